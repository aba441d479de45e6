package phases

import (
	"context"
	"time"

	"github.com/labctl/lab/templates"
	"github.com/labctl/lab/templates/kubeadm"
	"github.com/labctl/lab/templates/nodefiles"
)

const adminConf = "/etc/kubernetes/admin.conf"

// kubectl runs kubectl with the admin kubeconfig on the first control plane.
const kubectl = "kubectl --kubeconfig " + adminConf + " "

// kubeNodes are the nodes of the Kubernetes cluster.
func (r *Run) kubeNodes() []string { return names(r.Lab.KubernetesNodes()) }

func (r *Run) firstControlPlane() string {
	if cps := r.Lab.ControlPlanes(); len(cps) > 0 {
		return cps[0].Name
	}
	return ""
}

func (r *Run) secrets() (kubeadm.Secrets, error) {
	s, err := r.State.Secrets()
	if err != nil {
		return kubeadm.Secrets{}, err
	}
	ks := kubeadm.Secrets{Token: s.BootstrapToken, CertificateKey: s.CertificateKey}
	if r.join.caHash != "" {
		ks.CACertHashes = []string{r.join.caHash}
	}
	return ks, nil
}

// kubeadmFiles are the kubeadm configuration and patches phase (init or a
// join) installs on node, with the lab's credentials and, for joins, the
// CA hash learnt from the first control plane.
func (r *Run) kubeadmFiles(node, phase string) ([]templates.File, error) {
	secrets, err := r.secrets()
	if err != nil {
		return nil, err
	}
	return r.files(node, phase, func(in *nodefiles.Inputs) { in.Kubeadm = secrets })
}

// apiHealthy reports whether the API server answers through the admin
// kubeconfig on the first control plane.
func (r *Run) apiHealthy(ctx context.Context, node string) bool {
	_, err := r.run(ctx, node, "test -f "+adminConf+" && "+kubectl+"get --raw=/readyz >/dev/null 2>&1")
	return err == nil
}

// waitAPIHealthy waits until apiHealthy holds, or timeout passes.
func (r *Run) waitAPIHealthy(ctx context.Context, node string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for !r.apiHealthy(ctx, node) {
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(time.Second):
		}
	}
	return true
}
