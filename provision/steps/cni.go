package steps

import (
	"context"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/labctl/lab/provision/fetch"
	"github.com/labctl/lab/provision/labfile"
	"github.com/labctl/lab/provision/nodebin"
	"github.com/labctl/lab/provision/phase"
	"github.com/labctl/lab/templates"
	"github.com/labctl/lab/templates/cilium"
)

// Artifacts are the local files lab pushes to nodes.
type Artifacts struct {
	// LabNodeDir holds lab-node-linux-amd64 and lab-node-linux-arm64, the
	// builtin datapath for each node architecture, for a lab built without
	// them embedded (make build embeds them and also leaves them beside
	// bin/lab).
	LabNodeDir string
	// Helm is a linux helm binary for the first control plane's
	// architecture (cni: cilium). When empty, the release is downloaded
	// once into CacheDir and checked against its published checksum.
	Helm     string
	CacheDir string
	// Userland finds, in the node image's cache directory (see
	// artifacts.Layout), the Debian root file system the build source
	// takes kube-proxy's iptables from. The caller supplies it so that
	// steps depend on no provider; when nil, the build source only finds
	// Sets already in the cache.
	Userland func(nodeImageDir string) (string, error)
}

// goarch maps uname -m to Go's architecture names.
func goarch(machine string) (string, error) {
	switch machine {
	case "x86_64", "amd64":
		return "amd64", nil
	case "aarch64", "arm64":
		return "arm64", nil
	}
	return "", fmt.Errorf("no lab-node build for architecture %s (lab ships amd64 and arm64)", machine)
}

const (
	labNodePath = "/usr/local/bin/lab-node"
	labNodeUnit = "/etc/systemd/system/lab-node.service"
	// labNodeConf is lab-node's own kubeconfig: the ServiceAccount
	// kube-system/lab-node's token, never the kubelet's credentials.
	labNodeConf = "/etc/lab/lab-node.conf"
	ciliumDir   = "/etc/lab/cilium"
)

// labNodeService runs the datapath daemon once the kubelet has joined (the
// node's pod CIDR is on its Node object) and lab has written lab-node's
// kubeconfig.
const labNodeService = `# Rendered by lab: the builtin eBPF datapath and CNI plugin.
[Unit]
Description=lab-node: the builtin eBPF pod network
After=network-online.target kubelet.service
Wants=network-online.target
ConditionPathExists=` + labNodeConf + `

[Service]
ExecStart=/usr/local/bin/lab-node daemon --node-name %s --kubeconfig ` + labNodeConf + `
Restart=always
RestartSec=2

[Install]
WantedBy=multi-user.target
`

// labNodeTokenSecret holds the token of the ServiceAccount lab-node.
const labNodeTokenSecret = "lab-node-token"

// labNodeRBAC is lab-node's identity on the cluster: a ServiceAccount that
// may read Node objects and nothing else (lab-node routes to the other
// nodes' pod CIDRs; since Kubernetes 1.34 a kubelet may read only its own
// Node, and lab-node must not borrow the kubelet's far broader powers).
// Applying it over a cluster set up by an older lab rewrites the binding's
// subjects, which removes the old grant to the group system:nodes.
//
// The token is a Secret of type kubernetes.io/service-account-token, not a
// TokenRequest: kube-controller-manager fills it in, it does not expire, so
// it survives reboots and needs no renewal by lab, and it is the same on
// every run, so a second lab up finds each node's kubeconfig current
// (every TokenRequest returns a new token, and a long expiry would still
// end). Deleting the Secret revokes it; the next lab up makes a new one.
const labNodeRBAC = `apiVersion: v1
kind: ServiceAccount
metadata:
  name: lab-node
  namespace: kube-system
  labels: {app.kubernetes.io/managed-by: lab}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: lab-node
  labels: {app.kubernetes.io/managed-by: lab}
rules:
- apiGroups: [""]
  resources: [nodes]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: lab-node
  labels: {app.kubernetes.io/managed-by: lab}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: lab-node
subjects:
- kind: ServiceAccount
  name: lab-node
  namespace: kube-system
---
apiVersion: v1
kind: Secret
metadata:
  name: ` + labNodeTokenSecret + `
  namespace: kube-system
  labels: {app.kubernetes.io/managed-by: lab}
  annotations: {kubernetes.io/service-account.name: lab-node}
type: kubernetes.io/service-account-token
`

// labNodeTokenTimeout bounds the wait for kube-controller-manager to fill
// in the token Secret; it does so within a second once it runs.
const labNodeTokenTimeout = 2 * time.Minute

// readLabNodeToken prints the token Secret's token and CA, base64 encoded
// and separated by a space; nothing (or only the space) until they are
// filled in. Its output is secret: it goes to lab's memory only.
const readLabNodeToken = kubectl + `-n kube-system get secret ` + labNodeTokenSecret + ` -o jsonpath='{.data.token}{" "}{.data.ca\.crt}'`

// labNodeCred is what lab-node's kubeconfig carries besides the server.
type labNodeCred struct {
	token string
	ca    []byte // PEM
}

// labNodeAccess is lab-node's credential as learnt from the first control
// plane, once per run.
type labNodeAccess struct {
	mu      sync.Mutex
	checked bool         // the read-only check ran
	applied bool         // the RBAC objects were applied (successfully or not)
	cred    *labNodeCred // nil while unknown or not current
	err     error        // why applying failed
}

// jwt matches the characters of a JSON Web Token, so that a token can go
// into YAML unquoted and nothing else can.
var jwt = regexp.MustCompile(`^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$`)

// parseLabNodeCred reads readLabNodeToken's output; ok is false while the
// Secret is not filled in. Errors never quote the output.
func parseLabNodeCred(out string) (cred labNodeCred, ok bool, err error) {
	f := strings.Fields(out)
	if len(f) != 2 {
		return labNodeCred{}, false, nil
	}
	token, err := base64.StdEncoding.DecodeString(f[0])
	if err != nil || !jwt.Match(token) {
		return labNodeCred{}, false, fmt.Errorf("secret kube-system/%s holds no token lab-node can use", labNodeTokenSecret)
	}
	ca, err := base64.StdEncoding.DecodeString(f[1])
	if err != nil {
		return labNodeCred{}, false, fmt.Errorf("secret kube-system/%s: ca.crt is not base64: %w", labNodeTokenSecret, err)
	}
	if b, _ := pem.Decode(ca); b == nil || b.Type != "CERTIFICATE" {
		return labNodeCred{}, false, fmt.Errorf("secret kube-system/%s: ca.crt holds no PEM certificate", labNodeTokenSecret)
	}
	return labNodeCred{token: string(token), ca: ca}, true, nil
}

// learnLabNodeCred reads the token Secret on node and registers the token
// with the transport, so that it is masked should it ever reach a log line
// or an error.
func (c *Cluster) learnLabNodeCred(ctx context.Context, node string) (*labNodeCred, error) {
	out, err := c.run(ctx, node, readLabNodeToken)
	if err != nil {
		return nil, err
	}
	cred, ok, err := parseLabNodeCred(out)
	if err != nil || !ok {
		return nil, err
	}
	c.maskSecrets(ctx, node, cred.token, strings.Fields(out)[0])
	return &cred, nil
}

// currentLabNodeCred returns lab-node's credential when the RBAC objects
// on the cluster are as labNodeRBAC has them and the token is issued, and
// nil otherwise. It only reads (kubectl diff exits 0 when applying would
// change nothing), for the Done check, and asks once per run.
func (c *Cluster) currentLabNodeCred(ctx context.Context) *labNodeCred {
	a := &c.labNode
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.checked || a.applied {
		return a.cred
	}
	a.checked = true
	first := c.firstControlPlane()
	if _, err := c.run(ctx, first, kubectl+"diff -f - >/dev/null 2>&1 <<'EOF'\n"+labNodeRBAC+"EOF"); err != nil {
		return nil
	}
	a.cred, _ = c.learnLabNodeCred(ctx, first)
	return a.cred
}

// ensureLabNodeCred applies labNodeRBAC from the first control plane and
// waits for kube-controller-manager to issue the token, once per run.
func (c *Cluster) ensureLabNodeCred(ctx context.Context) (labNodeCred, error) {
	a := &c.labNode
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.applied {
		a.applied = true
		a.cred, a.err = c.applyLabNodeRBAC(ctx)
	}
	if a.err != nil {
		return labNodeCred{}, a.err
	}
	return *a.cred, nil
}

func (c *Cluster) applyLabNodeRBAC(ctx context.Context) (*labNodeCred, error) {
	first := c.firstControlPlane()
	if _, err := c.run(ctx, first, kubectl+"apply -f - >/dev/null <<'EOF'\n"+labNodeRBAC+"EOF"); err != nil {
		return nil, fmt.Errorf("giving lab-node its ServiceAccount: %w", err)
	}
	deadline := time.Now().Add(labNodeTokenTimeout)
	for {
		cred, err := c.learnLabNodeCred(ctx, first)
		if cred != nil {
			return cred, nil
		}
		if time.Now().After(deadline) {
			why := "kube-controller-manager did not fill it in"
			if err != nil {
				why = err.Error()
			}
			return nil, fmt.Errorf("no token in secret kube-system/%s after %s: %s", labNodeTokenSecret, labNodeTokenTimeout, why)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for lab-node's token: %w", ctx.Err())
		case <-time.After(time.Second):
		}
	}
}

// labNodeKubeconfig is lab-node's kubeconfig: the cluster CA, the lab's
// endpoint (the one the kubelets use, the VIP in vip mode) and the token.
func (c *Cluster) labNodeKubeconfig(cred labNodeCred) []byte {
	return fmt.Appendf(nil, `# Rendered by lab: lab-node's credential, the ServiceAccount kube-system/lab-node.
apiVersion: v1
kind: Config
clusters:
- name: lab
  cluster:
    server: https://%s
    certificate-authority-data: %s
users:
- name: lab-node
  user:
    token: %s
contexts:
- name: lab-node
  context: {cluster: lab, user: lab-node}
current-context: lab-node
`, c.Lab.EndpointString(), base64.StdEncoding.EncodeToString(cred.ca), cred.token)
}

// labNodeBinary is the lab-node build for node's architecture.
func (c *Cluster) labNodeBinary(node string) (templates.File, error) {
	f, err := c.Facts(node)
	if err != nil {
		return templates.File{}, err
	}
	arch, err := goarch(f.Arch)
	if err != nil {
		return templates.File{}, err
	}
	data, err := nodebin.LabNode(arch)
	if errors.Is(err, nodebin.ErrNotEmbedded) {
		// A lab built without make: the builds beside it, if any.
		data, err = os.ReadFile(filepath.Join(c.Artifacts.LabNodeDir, "lab-node-linux-"+arch))
		if err != nil {
			return templates.File{}, fmt.Errorf("lab-node for %s: not embedded in this lab and %w (build lab with make build)", arch, err)
		}
	}
	if err != nil {
		return templates.File{}, err
	}
	return templates.File{Path: labNodePath, Mode: 0o755, Content: data}, nil
}

// labNodeFiles are what the cni phase puts on node: the binary, its
// kubeconfig (0600: it holds the token) and the unit.
func (c *Cluster) labNodeFiles(node string, cred labNodeCred) ([]templates.File, error) {
	bin, err := c.labNodeBinary(node)
	if err != nil {
		return nil, err
	}
	return []templates.File{
		bin,
		{Path: labNodeConf, Mode: 0o600, Content: c.labNodeKubeconfig(cred)},
		{Path: labNodeUnit, Mode: 0o644, Content: []byte(fmt.Sprintf(labNodeService, node))},
	}, nil
}

func (c *Cluster) ciliumFiles(ctx context.Context, node string) ([]templates.File, error) {
	f, err := c.Facts(node)
	if err != nil {
		return nil, err
	}
	values, err := cilium.ValuesYAML(c.Lab, cilium.Facts{Interface: f.Interface})
	if err != nil {
		return nil, err
	}
	files := []templates.File{{Path: ciliumDir + "/values.yaml", Mode: 0o600, Content: values}}
	helm := c.Artifacts.Helm
	if helm == "" && c.Artifacts.CacheDir != "" {
		arch, err := goarch(f.Arch)
		if err != nil {
			return nil, err
		}
		if helm, err = fetch.Helm(ctx, fetch.HelmBaseURL, c.Artifacts.CacheDir, fetch.HelmVersion, arch); err != nil {
			return nil, err
		}
	}
	if helm != "" {
		data, err := os.ReadFile(helm)
		if err != nil {
			return nil, fmt.Errorf("helm: %w", err)
		}
		files = append(files, templates.File{Path: "/usr/local/bin/helm", Mode: 0o755, Content: data})
	}
	return files, nil
}

// CNI installs the pod network: lab-node on every node (builtin), or Cilium
// with `helm upgrade --install` from the first control plane (cilium).
func (c *Cluster) CNI() phase.Phase {
	switch c.Lab.CNI.Type {
	case labfile.CNIBuiltin:
		return phase.Phase{
			Name:  "cni",
			Title: "lab-node, the builtin eBPF datapath, on every node",
			Nodes: c.kubeNodes,
			Done: func(ctx context.Context, node string) (bool, error) {
				cred := c.currentLabNodeCred(ctx)
				if cred == nil {
					return false, nil
				}
				files, err := c.labNodeFiles(node, *cred)
				if err != nil {
					return false, err
				}
				return c.inPlace(ctx, node, files, freshCheck("lab-node", labNodePath, labNodeConf, labNodeUnit))
			},
			Run: func(ctx context.Context, node string) error {
				cred, err := c.ensureLabNodeCred(ctx)
				if err != nil {
					return err
				}
				files, err := c.labNodeFiles(node, cred)
				if err != nil {
					return err
				}
				_, err = c.install(ctx, node, files, "systemctl daemon-reload && systemctl enable --quiet lab-node && systemctl restart lab-node && "+
					"for i in $(seq 50); do systemctl is-active --quiet lab-node && exit 0; sleep 0.2; done; journalctl -u lab-node -n 20 --no-pager >&2; exit 1")
				return err
			},
			Describe: func(string) []string {
				return []string{
					"apply ServiceAccount kube-system/lab-node, ClusterRole lab-node (nodes: get, list, watch) bound to it alone, and its token Secret " + labNodeTokenSecret + " (from " + c.firstControlPlane() + ", once)",
					"write " + labNodeConf + " (0600: the ServiceAccount's token, server https://" + c.Lab.EndpointString() + ")",
					"upload " + labNodePath + " for the node's architecture and " + labNodeUnit,
					"systemctl enable --now lab-node",
				}
			},
		}
	case labfile.CNICilium:
		v := c.Lab.CNI.Cilium.Version
		return phase.Phase{
			Name:  "cni",
			Title: "Cilium " + v + " with helm upgrade --install",
			Order: phase.Serial,
			Nodes: func() []string { return []string{c.firstControlPlane()} },
			Done: func(ctx context.Context, node string) (bool, error) {
				files, err := c.ciliumFiles(ctx, node)
				if err != nil {
					return false, err
				}
				if ok, err := c.inPlace(ctx, node, files, ""); err != nil || !ok {
					return false, err
				}
				out, err := c.run(ctx, node, "KUBECONFIG="+adminConf+" helm status cilium -n kube-system -o json 2>/dev/null | grep -o '\"chart_version\":\"[^\"]*\"' || true")
				return err == nil && strings.Contains(out, v), nil
			},
			Run: func(ctx context.Context, node string) error {
				files, err := c.ciliumFiles(ctx, node)
				if err != nil {
					return err
				}
				cmd := fmt.Sprintf("command -v helm >/dev/null || { echo 'no helm on the node: lab pushes one when it has it' >&2; exit 1; }; "+
					"KUBECONFIG=%s helm upgrade --install cilium cilium --repo https://helm.cilium.io --version %s -n kube-system -f %s/values.yaml --wait --timeout 10m && "+
					kubectl+"-n kube-system rollout status ds/cilium --timeout %ds", adminConf, v, ciliumDir, int((10 * time.Minute).Seconds()))
				_, err = c.install(ctx, node, files, cmd)
				return err
			},
			Describe: func(string) []string {
				return []string{"write " + ciliumDir + "/values.yaml", "helm upgrade --install cilium " + v + "; wait for the agents"}
			},
		}
	}
	return phase.Phase{Name: "cni", Title: "no pod network (cni: none)", Nodes: func() []string { return nil }}
}
