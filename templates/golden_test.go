package templates

import (
	"bytes"
	"flag"
	"path/filepath"
	"testing"

	"github.com/labctl/lab/internal/golden"
	"github.com/labctl/lab/provision/labfile"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the current templates")

// labs loads every example lab in labs/; each one must load cleanly.
func labs(t *testing.T) map[string]*labfile.Lab { return golden.Labs(t, "../labs/*.yaml") }

func renderNode(t *testing.T, l *labfile.Lab, n *labfile.Node) []File {
	t.Helper()
	files, err := NodeFiles(l, n, DefaultFacts(l, n))
	if err != nil {
		t.Fatalf("NodeFiles(%s): %v", n.Name, err)
	}
	return files
}

func goldenFiles(files []File) []golden.File {
	out := make([]golden.File, len(files))
	for i, f := range files {
		out[i] = golden.File{Path: f.Path, Mode: f.Mode, Content: f.Content}
	}
	return out
}

// TestGolden compares every file of every node of every lab in labs/ with
// testdata/golden/<lab>/<node>/<path>. `go test ./templates -update`
// rewrites them.
func TestGolden(t *testing.T) {
	all := labs(t)
	for _, name := range golden.Names(all) {
		l := all[name]
		for i := range l.Nodes {
			n := &l.Nodes[i]
			t.Run(name+"/"+n.Name, func(t *testing.T) {
				golden.Tree(t, filepath.Join("testdata", "golden", name, n.Name), goldenFiles(renderNode(t, l, n)),
					*update, "go test ./templates -update")
			})
		}
	}
}

// TestDeterministic renders every node twice, from two separately loaded
// labs, and expects the same bytes.
func TestDeterministic(t *testing.T) {
	first, second := labs(t), labs(t)
	for name, l := range first {
		for i := range l.Nodes {
			a := goldenFiles(renderNode(t, l, &l.Nodes[i]))
			b := goldenFiles(renderNode(t, second[name], &second[name].Nodes[i]))
			if !bytes.Equal(golden.Manifest(a), golden.Manifest(b)) {
				t.Fatalf("%s/%s: file lists differ:\n%s\n%s", name, l.Nodes[i].Name, golden.Manifest(a), golden.Manifest(b))
			}
			for j := range a {
				if !bytes.Equal(a[j].Content, b[j].Content) {
					t.Errorf("%s/%s: %s differs between two renders", name, l.Nodes[i].Name, a[j].Path)
				}
			}
		}
	}
}
