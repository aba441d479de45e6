package provision

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/labctl/lab/provision/labfile"
	"github.com/labctl/lab/provision/provider/registry"
	"github.com/labctl/lab/templates"
	"github.com/labctl/lab/templates/nodefiles"
)

// RenderedNode is one node's files, as `lab render` shows them: grouped by
// the phase of `lab up` that installs them.
type RenderedNode struct {
	Node   string
	Groups []nodefiles.Group
}

// Files counts the node's files.
func (r RenderedNode) Files() int {
	n := 0
	for _, g := range r.Groups {
		n += len(g.Files)
	}
	return n
}

// Render renders every node of l (or only those named) as `lab up` would,
// with the facts its provider implies and placeholders for the credentials
// only `lab up` learns.
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
		groups, err := nodefiles.For(l, n, nodefiles.Placeholders(defaultFacts(l)))
		if err != nil {
			return nil, err
		}
		out = append(out, RenderedNode{Node: n.Name, Groups: groups})
	}
	return out, nil
}

// defaultFacts are what lab assumes of l's nodes before it has seen them:
// what their provider says of them.
func defaultFacts(l *labfile.Lab) templates.Facts {
	t := registry.Traits(l)
	return templates.Facts{Interface: t.NodeInterface, Container: t.Container()}
}

// WriteRendered writes each node's files under dir/<node>/<path>, with the
// modes they have on the node.
func WriteRendered(dir string, nodes []RenderedNode) error {
	for _, rn := range nodes {
		for _, g := range rn.Groups {
			for _, f := range g.Files {
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
	}
	return nil
}
