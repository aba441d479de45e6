package provision

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/labctl/lab/provision/labfile"
	"github.com/labctl/lab/templates"
	"github.com/labctl/lab/templates/kubeadm"
)

// NodeFiles is every file node n receives from lab: OS, runtime and
// load-balancer files, and its kubeadm configuration. Secrets are the real
// ones at `up` time and kubeadm.Placeholders() for `lab render`.
func NodeFiles(l *labfile.Lab, n *labfile.Node, f templates.Facts, s kubeadm.Secrets) ([]templates.File, error) {
	files, err := templates.NodeFiles(l, n, f)
	if err != nil {
		return nil, err
	}
	kf, err := kubeadm.Files(l, n, s)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.Name, err)
	}
	for _, k := range kf {
		files = append(files, templates.File{Path: k.Path, Mode: k.Mode, Content: k.Content})
	}
	return files, nil
}

// RenderedNode is one node's files, as `lab render` shows them.
type RenderedNode struct {
	Node  string
	Files []templates.File
}

// Render renders every node of l (or only those named) with the provider's
// default facts and placeholder secrets.
func Render(l *labfile.Lab, only []string) ([]RenderedNode, error) {
	want := map[string]bool{}
	for _, n := range only {
		if l.Node(n) == nil {
			return nil, fmt.Errorf("no node called %q in lab %s", n, l.Metadata.Name)
		}
		want[n] = true
	}
	var out []RenderedNode
	for i := range l.Nodes {
		n := &l.Nodes[i]
		if len(want) > 0 && !want[n.Name] {
			continue
		}
		files, err := NodeFiles(l, n, templates.DefaultFacts(l, n), kubeadm.Placeholders())
		if err != nil {
			return nil, err
		}
		out = append(out, RenderedNode{Node: n.Name, Files: files})
	}
	return out, nil
}

// WriteRendered writes each node's files under dir/<node>/<path>. Files are
// written 0644 or 0600 as on the node (group and world bits dropped for
// anything that holds secrets).
func WriteRendered(dir string, nodes []RenderedNode) error {
	for _, rn := range nodes {
		for _, f := range rn.Files {
			p := filepath.Join(dir, rn.Node, filepath.FromSlash(strings.TrimPrefix(f.Path, "/")))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(p, f.Content, f.Mode.Perm()); err != nil {
				return err
			}
			if err := os.Chmod(p, f.Mode.Perm()); err != nil {
				return err
			}
		}
	}
	return nil
}
