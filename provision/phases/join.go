package phases

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/labctl/lab/provision/labfile"
	"github.com/labctl/lab/provision/workflow"
	"github.com/labctl/lab/templates/kubeadm"
	"github.com/labctl/lab/templates/nodefiles"
)

// join holds the credentials joining nodes need; they are learnt from the
// first control plane once per run.
type join struct {
	once   sync.Once
	err    error
	caHash string
}

// CAHash computes kubeadm's discovery hash of a CA certificate:
// sha256 of its DER SubjectPublicKeyInfo.
func CAHash(caPEM []byte) (string, error) {
	b, _ := pem.Decode(caPEM)
	if b == nil {
		return "", errors.New("no PEM certificate")
	}
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// prepareJoin learns the CA hash from the first control plane and makes
// sure the bootstrap token and the uploaded certificates are valid now:
// a lab up resumed hours later finds both expired.
func (r *Run) prepareJoin(ctx context.Context) error {
	r.join.once.Do(func() {
		first := r.firstControlPlane()
		conn, err := r.Conn(ctx, first)
		if err != nil {
			r.join.err = err
			return
		}
		ca, err := conn.Run(ctx, "cat /etc/kubernetes/pki/ca.crt")
		if err != nil {
			r.join.err = fmt.Errorf("%s: reading the cluster CA: %w", first, err)
			return
		}
		if r.join.caHash, err = CAHash([]byte(ca)); err != nil {
			r.join.err = fmt.Errorf("%s: /etc/kubernetes/pki/ca.crt: %w", first, err)
			return
		}
		s, err := r.State.Secrets()
		if err != nil {
			r.join.err = err
			return
		}
		// The token goes in on stdin-free form through a file would be
		// nicer; kubeadm only takes it as an argument, and the transport
		// masks it in every log line and error.
		r.maskSecrets(ctx, first, s.BootstrapToken, s.CertificateKey)
		tokenID, _, _ := strings.Cut(s.BootstrapToken, ".")
		cmd := script(tokenSh, tokenID, s.BootstrapToken, kubeadm.TokenTTL.String())
		if _, err := conn.Run(ctx, cmd); err != nil {
			r.join.err = fmt.Errorf("%s: renewing the bootstrap token: %w", first, err)
			return
		}
		if len(r.Lab.ControlPlanes()) > 1 {
			if _, err := conn.Run(ctx, "kubeadm init phase upload-certs --upload-certs --config "+kubeadm.InitPath+" >/dev/null"); err != nil {
				r.join.err = fmt.Errorf("%s: uploading the control-plane certificates: %w", first, err)
			}
		}
	})
	return r.join.err
}

// joined reports whether node is already a member: its kubelet has its own
// kubeconfig and, for a control plane, its API server answers.
func (r *Run) joined(ctx context.Context, node string) bool {
	check := "test -f /etc/kubernetes/kubelet.conf && systemctl is-active --quiet kubelet"
	if r.node(node).HasRole(labfile.RoleControlPlane) {
		check += " && " + kubectl + "get --raw=/readyz >/dev/null 2>&1"
	}
	_, err := r.run(ctx, node, check)
	return err == nil
}

func (r *Run) joinPhase(name, title string, order workflow.Order, nodes func() []string) workflow.Phase {
	return workflow.Phase{
		Name:  name,
		Needs: needsFacts,
		Title: title,
		Order: order,
		Nodes: nodes,
		Done: func(ctx context.Context, node string) (bool, error) {
			return r.joined(ctx, node), nil
		},
		Run: func(ctx context.Context, node string) error {
			if err := r.prepareJoin(ctx); err != nil {
				return err
			}
			files, err := r.kubeadmFiles(node, name)
			if err != nil {
				return err
			}
			_, err = r.install(ctx, node, files,
				script(kubeadmResetStaleSh, "/etc/kubernetes/kubelet.conf", "/etc/kubernetes/manifests/etcd.yaml"),
				"kubeadm "+strings.Join(kubeadm.JoinArgs(), " "))
			return err
		},
		Describe: func(node string) []string {
			return []string{"write " + kubeadm.JoinPath + " (0600; CA pinned by hash)", "kubeadm " + strings.Join(kubeadm.JoinArgs(), " ")}
		},
	}
}

// JoinControlPlanes joins the other control planes one at a time: each
// join adds an etcd member, and etcd must reach quorum before the next.
func (r *Run) JoinControlPlanes() workflow.Phase {
	return r.joinPhase(nodefiles.JoinControlPlane, "kubeadm join --control-plane, one at a time", workflow.Serial, func() []string {
		cps := r.Lab.ControlPlanes()
		if len(cps) < 2 {
			return nil
		}
		return names(cps[1:])
	})
}

// JoinWorkers joins the workers, all at once.
func (r *Run) JoinWorkers() workflow.Phase {
	return r.joinPhase(nodefiles.JoinWorker, "kubeadm join as workers", workflow.Parallel, func() []string {
		var out []string
		for _, n := range r.Lab.Workers() {
			if !n.HasRole(labfile.RoleControlPlane) {
				out = append(out, n.Name)
			}
		}
		return out
	})
}
