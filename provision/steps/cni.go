package steps

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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
	ciliumDir   = "/etc/lab/cilium"
)

// labNodeService runs the datapath daemon once the kubelet has joined (its
// kubeconfig is how lab-node reads the Node objects).
const labNodeService = `# Rendered by lab: the builtin eBPF datapath and CNI plugin.
[Unit]
Description=lab-node: the builtin eBPF pod network
After=network-online.target kubelet.service
Wants=network-online.target
ConditionPathExists=/etc/kubernetes/kubelet.conf

[Service]
ExecStart=/usr/local/bin/lab-node daemon --node-name %s --kubeconfig /etc/kubernetes/kubelet.conf
Restart=always
RestartSec=2

[Install]
WantedBy=multi-user.target
`

// nodeReadRBAC lets every node read every Node object: lab-node routes to
// the other nodes' pod CIDRs, and since Kubernetes 1.34 the node
// authorizer alone lets a kubelet read only its own Node.
const nodeReadRBAC = `apiVersion: rbac.authorization.k8s.io/v1
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
- apiGroup: rbac.authorization.k8s.io
  kind: Group
  name: system:nodes
`

// grantNodeRead applies nodeReadRBAC once per run, from the first control
// plane.
func (c *Cluster) grantNodeRead(ctx context.Context) error {
	c.rbac.Do(func() {
		_, c.rbacErr = c.run(ctx, c.firstControlPlane(), kubectl+"apply -f - >/dev/null <<'EOF'\n"+nodeReadRBAC+"EOF")
		if c.rbacErr != nil {
			c.rbacErr = fmt.Errorf("letting lab-node read Node objects: %w", c.rbacErr)
		}
	})
	return c.rbacErr
}

func (c *Cluster) labNodeFiles(node string) ([]templates.File, error) {
	f, err := c.Facts(node)
	if err != nil {
		return nil, err
	}
	arch, err := goarch(f.Arch)
	if err != nil {
		return nil, err
	}
	data, err := nodebin.LabNode(arch)
	if errors.Is(err, nodebin.ErrNotEmbedded) {
		// A lab built without make: the builds beside it, if any.
		data, err = os.ReadFile(filepath.Join(c.Artifacts.LabNodeDir, "lab-node-linux-"+arch))
		if err != nil {
			return nil, fmt.Errorf("lab-node for %s: not embedded in this lab and %w (build lab with make build)", arch, err)
		}
	}
	if err != nil {
		return nil, err
	}
	return []templates.File{
		{Path: labNodePath, Mode: 0o755, Content: data},
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
				files, err := c.labNodeFiles(node)
				if err != nil {
					return false, err
				}
				return c.inPlace(ctx, node, files, freshCheck("lab-node", labNodePath, labNodeUnit))
			},
			Run: func(ctx context.Context, node string) error {
				files, err := c.labNodeFiles(node)
				if err != nil {
					return err
				}
				if err := c.grantNodeRead(ctx); err != nil {
					return err
				}
				_, err = c.install(ctx, node, files, "systemctl daemon-reload && systemctl enable --quiet lab-node && systemctl restart lab-node && "+
					"for i in $(seq 50); do systemctl is-active --quiet lab-node && exit 0; sleep 0.2; done; journalctl -u lab-node -n 20 --no-pager >&2; exit 1")
				return err
			},
			Describe: func(string) []string {
				return []string{"upload " + labNodePath + " for the node's architecture and " + labNodeUnit, "systemctl enable --now lab-node"}
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
