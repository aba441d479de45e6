// Package templates owns what every node of a lab receives: the exact bytes
// of each file lab writes onto it (load balancer, container runtime and OS
// settings), rendered from embedded templates and typed data. It touches no
// node; the provisioning steps copy the files, and the tests judge them with
// the real programs that read them (haproxy -c, keepalived -t).
package templates

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"path/filepath"
	"regexp"
	"text/template"

	"github.com/labctl/lab/provision/labfile"
)

// File is one file a node receives.
type File struct {
	// Path is absolute on the node.
	Path    string
	Mode    fs.FileMode
	Content []byte
}

// Facts are what lab must know about a node that the lab file does not say.
// Before lab has seen a node they come from its provider's traits; `lab up`
// detects the interface on the node before rendering.
type Facts struct {
	// Interface is the network interface that carries the node network:
	// Keepalived sends its adverts and adds the VIP there, and Cilium's
	// devices include it.
	Interface string
	// Container is true for container nodes: they lack CAP_SYS_RESOURCE,
	// AppArmor is the host's business and the connection-tracking table
	// is the host's.
	Container bool
}

// Check reports facts that cannot go into a rendered file.
func (f Facts) Check() error {
	if !ifaceName.MatchString(f.Interface) {
		return fmt.Errorf("%q is not a network interface name", f.Interface)
	}
	return nil
}

// Paths of the files lab writes.
const (
	HAProxyConfigPath    = "/etc/haproxy/haproxy.cfg"
	KeepalivedConfigPath = "/etc/keepalived/keepalived.conf"
	CheckScriptPath      = "/etc/keepalived/check_apiserver.sh"
	ContainerdConfigPath = "/etc/containerd/config.toml"
	CrictlConfigPath     = "/etc/crictl.yaml"
	SysctlPath           = "/etc/sysctl.d/90-lab.conf"
	ModulesPath          = "/etc/modules-load.d/lab.conf"
)

//go:embed etc
var embedded embed.FS

// parsed holds every template, named by its path under etc/. Parsing the
// embedded files cannot fail at run time unless the binary is broken, which
// the tests catch.
var parsed = template.Must(template.New("").Option("missingkey=error").ParseFS(embedded,
	"etc/*.tmpl", "etc/*/*.tmpl"))

// ifaceName is what Linux accepts as an interface name (IFNAMSIZ-1 bytes, no
// slash or whitespace), narrowed to characters that are safe unquoted in
// every file that names it.
var ifaceName = regexp.MustCompile(`^[A-Za-z0-9_.@:-]{1,15}$`)

// OSFiles are the sysctl and kernel-module files every node receives.
func OSFiles(l *labfile.Lab, n *labfile.Node) ([]File, error) {
	h := header(l, n)
	var files []File
	for _, path := range []string{SysctlPath, ModulesPath} {
		f, err := render(path, 0o644, h)
		if err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	return files, nil
}

// LoadBalancerFiles are HAProxy's and Keepalived's files on a node that may
// hold the VIP, and nothing on any other node.
func LoadBalancerFiles(l *labfile.Lab, n *labfile.Node, f Facts) ([]File, error) {
	if !l.IsLoadBalancer(n) {
		return nil, nil
	}
	if err := f.Check(); err != nil {
		return nil, err
	}
	if !l.NodeIP(n).IsValid() {
		return nil, fmt.Errorf("no address on the node network %q", l.Kubernetes.NodeNetwork)
	}
	return loadBalancerFiles(l, n, f, header(l, n))
}

// RuntimeFiles are containerd's and crictl's configuration on a node of the
// Kubernetes cluster, and nothing on any other node.
func RuntimeFiles(l *labfile.Lab, n *labfile.Node, f Facts) ([]File, error) {
	if !n.HasRole(labfile.RoleControlPlane) && !n.HasRole(labfile.RoleWorker) {
		return nil, nil
	}
	return runtimeFiles(l, f, header(l, n))
}

// header is the comment every rendered file starts with. It names the node
// and the lab but nothing that changes between runs (no time, no version),
// so output stays byte-for-byte deterministic.
func header(l *labfile.Lab, n *labfile.Node) string {
	return fmt.Sprintf("Rendered by lab for node %s of lab %s. `lab up` overwrites it: edit the lab file instead.",
		n.Name, l.Metadata.Name)
}

// render executes the embedded template for path: etc/.../<base of path>.tmpl.
func render(path string, mode fs.FileMode, data any) (File, error) {
	var b bytes.Buffer
	if err := parsed.ExecuteTemplate(&b, filepath.Base(path)+".tmpl", data); err != nil {
		return File{}, fmt.Errorf("render %s: %w", path, err)
	}
	return File{Path: path, Mode: mode, Content: b.Bytes()}, nil
}
