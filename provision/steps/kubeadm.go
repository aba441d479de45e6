package steps

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
	"time"

	"github.com/labctl/lab/provision/labfile"
	"github.com/labctl/lab/provision/phase"
	"github.com/labctl/lab/templates"
	"github.com/labctl/lab/templates/kubeadm"
	"github.com/labctl/lab/templates/nodefiles"
)

const adminConf = "/etc/kubernetes/admin.conf"

// kubectl runs kubectl with the admin kubeconfig on the first control plane.
const kubectl = "kubectl --kubeconfig " + adminConf + " "

// join holds the credentials joining nodes need; they are learnt from the
// first control plane once per run.
type join struct {
	once   sync.Once
	err    error
	caHash string
}

// kubeNodes are the nodes of the Kubernetes cluster.
func (c *Cluster) kubeNodes() []string { return names(c.Lab.KubernetesNodes()) }

func (c *Cluster) firstControlPlane() string {
	if cps := c.Lab.ControlPlanes(); len(cps) > 0 {
		return cps[0].Name
	}
	return ""
}

func (c *Cluster) secrets() (kubeadm.Secrets, error) {
	s, err := c.State.Secrets()
	if err != nil {
		return kubeadm.Secrets{}, err
	}
	ks := kubeadm.Secrets{Token: s.BootstrapToken, CertificateKey: s.CertificateKey}
	if c.join.caHash != "" {
		ks.CACertHashes = []string{c.join.caHash}
	}
	return ks, nil
}

// kubeadmFiles are the kubeadm configuration and patches phase (init or a
// join) installs on node, with the lab's credentials and, for joins, the
// CA hash learnt from the first control plane.
func (c *Cluster) kubeadmFiles(node, phase string) ([]templates.File, error) {
	in, err := c.inputs(node)
	if err != nil {
		return nil, err
	}
	if in.Kubeadm, err = c.secrets(); err != nil {
		return nil, err
	}
	return nodefiles.ForPhase(c.Lab, c.node(node), phase, in)
}

// debVersion is the pkgs.k8s.io package version of a release: v1.34.12 →
// 1.34.12-1.1.
func debVersion(v string) string { return strings.TrimPrefix(v, "v") + "-1.1" }

func minorOf(v string) string {
	parts := strings.SplitN(strings.TrimPrefix(v, "v"), ".", 3)
	if len(parts) < 2 {
		return v
	}
	return "v" + parts[0] + "." + parts[1]
}

// kubernetesScript installs kubeadm, kubelet and kubectl at the lab's
// version from the Kubernetes project's package repository and holds them.
func kubernetesScript(version string) string {
	return script(kubernetesSh, minorOf(version), debVersion(version))
}

// Kubernetes installs kubeadm, kubelet and kubectl at the lab's version
// where they are missing or at another version.
// With kubernetes.artifacts: build or release, everything is gathered on
// the machine that runs lab instead and pushed to the nodes (see
// kubernetesArtifacts).
func (c *Cluster) Kubernetes() phase.Phase {
	if a := c.Lab.Kubernetes.Artifacts; a == labfile.ArtifactsBuild || a == labfile.ArtifactsRelease {
		return c.kubernetesArtifacts()
	}
	v := c.Lab.Kubernetes.Version
	return phase.Phase{
		Name:  nodefiles.Kubernetes,
		Needs: needsFacts,
		Title: "kubeadm, kubelet, kubectl " + v,
		Nodes: c.kubeNodes,
		Done: func(ctx context.Context, node string) (bool, error) {
			out, err := c.run(ctx, node, versionsSh)
			if err != nil {
				return false, nil
			}
			f := strings.Fields(out)
			return len(f) == 4 && f[0] == v && f[2] == v && f[3] == v, nil
		},
		Run: func(ctx context.Context, node string) error {
			_, err := c.run(ctx, node, kubernetesScript(v))
			if err != nil {
				return fmt.Errorf("installing Kubernetes %s packages: %w", v, err)
			}
			return nil
		},
		Describe: func(string) []string {
			return []string{"add pkgs.k8s.io " + minorOf(v) + " and apt-get install kubelet kubeadm kubectl=" + debVersion(v) + "; hold them"}
		},
	}
}

// apiHealthy reports whether the API server answers through the admin
// kubeconfig on the first control plane.
func (c *Cluster) apiHealthy(ctx context.Context, node string) bool {
	_, err := c.run(ctx, node, "test -f "+adminConf+" && "+kubectl+"get --raw=/readyz >/dev/null 2>&1")
	return err == nil
}

// waitAPIHealthy waits until apiHealthy holds, or timeout passes.
func (c *Cluster) waitAPIHealthy(ctx context.Context, node string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for !c.apiHealthy(ctx, node) {
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

// Init runs kubeadm init on the first control plane, with the certificates
// uploaded (encrypted with the lab's certificate key) for the others.
func (c *Cluster) Init() phase.Phase {
	return phase.Phase{
		Name:  nodefiles.Init,
		Needs: needsFacts,
		Title: "kubeadm init, endpoint " + c.Lab.EndpointString(),
		Order: phase.Serial,
		Nodes: func() []string { return []string{c.firstControlPlane()} },
		Done: func(ctx context.Context, node string) (bool, error) {
			return c.apiHealthy(ctx, node), nil
		},
		Run: func(ctx context.Context, node string) error {
			files, err := c.kubeadmFiles(node, nodefiles.Init)
			if err != nil {
				return err
			}
			// kubeadm init prints the join commands, token and
			// certificate key included.
			if s, err := c.State.Secrets(); err == nil {
				c.maskSecrets(ctx, node, s.BootstrapToken, s.CertificateKey)
			}
			// A half-finished init (killed lab up) leaves manifests that
			// make the next init fail its preflight: start over.
			if _, err := c.install(ctx, node, files,
				script(kubeadmResetStaleSh, "/etc/kubernetes/manifests/kube-apiserver.yaml"),
				"kubeadm "+strings.Join(kubeadm.InitArgs(c.Lab), " ")); err != nil {
				return err
			}
			// kubeadm waits for the local API server; the endpoint (the
			// VIP's HAProxy) sends to it once its health check passes.
			if !c.waitAPIHealthy(ctx, node, time.Minute) {
				return errors.New("kubeadm init finished but the API server does not answer /readyz through the endpoint within a minute")
			}
			return nil
		},
		Describe: func(node string) []string {
			return []string{"write " + kubeadm.InitPath + " (0600, with the lab's token and certificate key)", "kubeadm " + strings.Join(kubeadm.InitArgs(c.Lab), " ")}
		},
	}
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
func (c *Cluster) prepareJoin(ctx context.Context) error {
	c.join.once.Do(func() {
		first := c.firstControlPlane()
		conn, err := c.Conn(ctx, first)
		if err != nil {
			c.join.err = err
			return
		}
		ca, err := conn.Run(ctx, "cat /etc/kubernetes/pki/ca.crt")
		if err != nil {
			c.join.err = fmt.Errorf("%s: reading the cluster CA: %w", first, err)
			return
		}
		if c.join.caHash, err = CAHash([]byte(ca)); err != nil {
			c.join.err = fmt.Errorf("%s: /etc/kubernetes/pki/ca.crt: %w", first, err)
			return
		}
		s, err := c.State.Secrets()
		if err != nil {
			c.join.err = err
			return
		}
		// The token goes in on stdin-free form through a file would be
		// nicer; kubeadm only takes it as an argument, and the transport
		// masks it in every log line and error.
		c.maskSecrets(ctx, first, s.BootstrapToken, s.CertificateKey)
		tokenID, _, _ := strings.Cut(s.BootstrapToken, ".")
		cmd := script(tokenSh, tokenID, s.BootstrapToken, kubeadm.TokenTTL.String())
		if _, err := conn.Run(ctx, cmd); err != nil {
			c.join.err = fmt.Errorf("%s: renewing the bootstrap token: %w", first, err)
			return
		}
		if len(c.Lab.ControlPlanes()) > 1 {
			if _, err := conn.Run(ctx, "kubeadm init phase upload-certs --upload-certs --config "+kubeadm.InitPath+" >/dev/null"); err != nil {
				c.join.err = fmt.Errorf("%s: uploading the control-plane certificates: %w", first, err)
			}
		}
	})
	return c.join.err
}

// joined reports whether node is already a member: its kubelet has its own
// kubeconfig and, for a control plane, its API server answers.
func (c *Cluster) joined(ctx context.Context, node string) bool {
	check := "test -f /etc/kubernetes/kubelet.conf && systemctl is-active --quiet kubelet"
	if c.node(node).HasRole(labfile.RoleControlPlane) {
		check += " && " + kubectl + "get --raw=/readyz >/dev/null 2>&1"
	}
	_, err := c.run(ctx, node, check)
	return err == nil
}

func (c *Cluster) joinPhase(name, title string, order phase.Order, nodes func() []string) phase.Phase {
	return phase.Phase{
		Name:  name,
		Needs: needsFacts,
		Title: title,
		Order: order,
		Nodes: nodes,
		Done: func(ctx context.Context, node string) (bool, error) {
			return c.joined(ctx, node), nil
		},
		Run: func(ctx context.Context, node string) error {
			if err := c.prepareJoin(ctx); err != nil {
				return err
			}
			files, err := c.kubeadmFiles(node, name)
			if err != nil {
				return err
			}
			_, err = c.install(ctx, node, files,
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
func (c *Cluster) JoinControlPlanes() phase.Phase {
	return c.joinPhase(nodefiles.JoinControlPlane, "kubeadm join --control-plane, one at a time", phase.Serial, func() []string {
		cps := c.Lab.ControlPlanes()
		if len(cps) < 2 {
			return nil
		}
		return names(cps[1:])
	})
}

// JoinWorkers joins the workers, all at once.
func (c *Cluster) JoinWorkers() phase.Phase {
	return c.joinPhase(nodefiles.JoinWorker, "kubeadm join as workers", phase.Parallel, func() []string {
		var out []string
		for _, n := range c.Lab.Workers() {
			if !n.HasRole(labfile.RoleControlPlane) {
				out = append(out, n.Name)
			}
		}
		return out
	})
}

// Ready waits until every node of the lab is registered and Ready.
func (c *Cluster) Ready(timeout time.Duration) phase.Phase {
	return phase.Phase{
		Name:  "ready",
		Title: "wait until every node is Ready",
		Order: phase.Serial,
		Nodes: func() []string { return []string{c.firstControlPlane()} },
		Run: func(ctx context.Context, node string) error {
			want := len(c.Lab.KubernetesNodes())
			deadline := time.Now().Add(timeout)
			var last string
			for {
				out, err := c.run(ctx, node, kubectl+`get nodes -o jsonpath='{range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}'`)
				if err == nil {
					ready, notReady := 0, []string{}
					for _, line := range strings.Fields(out) {
						name, st, _ := strings.Cut(line, "=")
						if st == "True" {
							ready++
						} else {
							notReady = append(notReady, name)
						}
					}
					if ready >= want {
						return nil
					}
					last = fmt.Sprintf("%d of %d nodes Ready (not ready: %s)", ready, want, strings.Join(notReady, ", "))
				} else {
					last = err.Error()
				}
				if time.Now().After(deadline) {
					return fmt.Errorf("nodes not Ready after %s: %s; `lab logs` collects the kubelet logs", timeout, last)
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(2 * time.Second):
				}
			}
		},
	}
}

// Kubeconfig copies the admin kubeconfig (its server is the control-plane
// endpoint: the VIP in vip mode) into the lab's state directory, 0600.
func (c *Cluster) Kubeconfig() phase.Phase {
	return phase.Phase{
		Name:  "kubeconfig",
		Title: "write the admin kubeconfig, server https://" + c.Lab.EndpointString(),
		Order: phase.Local,
		Run: func(ctx context.Context, _ string) error {
			out, err := c.run(ctx, c.firstControlPlane(), "cat "+adminConf)
			if err != nil {
				return err
			}
			if !strings.Contains(out, "server: https://"+c.Lab.EndpointString()) {
				return fmt.Errorf("%s on %s does not point at the endpoint %s", adminConf, c.firstControlPlane(), c.Lab.EndpointString())
			}
			if err := c.State.WriteFile("admin.conf", []byte(out)); err != nil {
				return err
			}
			c.info("kubeconfig", "", "wrote %s", c.State.Kubeconfig())
			return nil
		},
	}
}
