package phases

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/labctl/lab/provision/workflow"
	"github.com/labctl/lab/templates/kubeadm"
	"github.com/labctl/lab/templates/nodefiles"
)

// Init runs kubeadm init on the first control plane, with the certificates
// uploaded (encrypted with the lab's certificate key) for the others.
func (r *Run) Init() workflow.Phase {
	return workflow.Phase{
		Name:  nodefiles.Init,
		Needs: needsFacts,
		Title: "kubeadm init, endpoint " + r.Lab.EndpointString(),
		Order: workflow.Serial,
		Nodes: func() []string { return []string{r.firstControlPlane()} },
		Done: func(ctx context.Context, node string) (bool, error) {
			return r.apiHealthy(ctx, node), nil
		},
		Run: func(ctx context.Context, node string) error {
			files, err := r.kubeadmFiles(node, nodefiles.Init)
			if err != nil {
				return err
			}
			// kubeadm init prints the join commands, token and
			// certificate key included.
			if s, err := r.State.Secrets(); err == nil {
				r.maskSecrets(ctx, node, s.BootstrapToken, s.CertificateKey)
			}
			// A half-finished init (killed lab up) leaves manifests that
			// make the next init fail its preflight: start over.
			if _, err := r.install(ctx, node, files,
				script(kubeadmResetStaleSh, "/etc/kubernetes/manifests/kube-apiserver.yaml"),
				"kubeadm "+strings.Join(kubeadm.InitArgs(r.Lab), " ")); err != nil {
				return err
			}
			// kubeadm waits for the local API server; the endpoint (the
			// VIP's HAProxy) sends to it once its health check passes.
			if !r.waitAPIHealthy(ctx, node, time.Minute) {
				return errors.New("kubeadm init finished but the API server does not answer /readyz through the endpoint within a minute")
			}
			return nil
		},
		Describe: func(node string) []string {
			return []string{"write " + kubeadm.InitPath + " (0600, with the lab's token and certificate key)", "kubeadm " + strings.Join(kubeadm.InitArgs(r.Lab), " ")}
		},
	}
}
