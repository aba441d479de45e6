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
	"sort"
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
// DefaultFacts guesses them from the provider; `lab up` detects the real
// values on the node before rendering.
type Facts struct {
	// Interface is the network interface that carries the node network:
	// Keepalived sends its adverts and adds the VIP there.
	Interface string
}

// DefaultFacts is the best guess before lab has seen the node: containers
// get their first network on eth0; a VirtualBox VM's first NIC is the NAT
// one (10.0.2.15), so the host-only lab network is the second, eth1; a
// static host is assumed to have one NIC, eth0.
func DefaultFacts(l *labfile.Lab, n *labfile.Node) Facts {
	switch l.Provider.Type {
	case labfile.ProviderVagrant:
		return Facts{Interface: "eth1"}
	default:
		return Facts{Interface: "eth0"}
	}
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

// NodeFiles returns every file node n receives, sorted by path. The same
// lab, node and facts always give the same bytes.
func NodeFiles(l *labfile.Lab, n *labfile.Node, f Facts) ([]File, error) {
	if !ifaceName.MatchString(f.Interface) {
		return nil, fmt.Errorf("%s: %q is not a network interface name", n.Name, f.Interface)
	}
	if !l.NodeIP(n).IsValid() {
		return nil, fmt.Errorf("%s: no address on the node network %q", n.Name, l.Kubernetes.NodeNetwork)
	}
	h := header(l, n)
	var files []File
	for _, path := range []string{SysctlPath, ModulesPath} {
		f, err := render(path, 0o644, h)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n.Name, err)
		}
		files = append(files, f)
	}
	if isLoadBalancer(l, n) {
		lb, err := loadBalancerFiles(l, n, f, h)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n.Name, err)
		}
		files = append(files, lb...)
	}
	if n.HasRole(labfile.RoleControlPlane) || n.HasRole(labfile.RoleWorker) {
		rt, err := runtimeFiles(l, h)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n.Name, err)
		}
		files = append(files, rt...)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	return files, nil
}

// header is the comment every rendered file starts with. It names the node
// and the lab but nothing that changes between runs (no time, no version),
// so output stays byte-for-byte deterministic.
func header(l *labfile.Lab, n *labfile.Node) string {
	return fmt.Sprintf("Rendered by lab for node %s of lab %s. `lab up` overwrites it: edit the lab file instead.",
		n.Name, l.Metadata.Name)
}

func isLoadBalancer(l *labfile.Lab, n *labfile.Node) bool {
	for _, lb := range l.LoadBalancers() {
		if lb.Name == n.Name {
			return true
		}
	}
	return false
}

// render executes the embedded template for path: etc/.../<base of path>.tmpl.
func render(path string, mode fs.FileMode, data any) (File, error) {
	var b bytes.Buffer
	if err := parsed.ExecuteTemplate(&b, filepath.Base(path)+".tmpl", data); err != nil {
		return File{}, fmt.Errorf("render %s: %w", path, err)
	}
	return File{Path: path, Mode: mode, Content: b.Bytes()}, nil
}
