package kubeadm

import (
	"bytes"
	"flag"
	"path/filepath"
	"testing"

	"github.com/labctl/lab/internal/golden"
	"github.com/labctl/lab/provision/labfile"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the current rendering")

// labs loads every lab file in labs/, by name.
func labs(t *testing.T) map[string]*labfile.Lab { return golden.Labs(t, "../../labs/*.yaml") }

// sortedNames returns the keys of m in order, so subtests run in a stable order.
func sortedNames(m map[string]*labfile.Lab) []string { return golden.Names(m) }

func goldenFiles(files []File) []golden.File {
	out := make([]golden.File, len(files))
	for i, f := range files {
		out[i] = golden.File{Path: f.Path, Mode: f.Mode, Content: f.Content}
	}
	return out
}

func manifest(files []File) []byte { return golden.Manifest(goldenFiles(files)) }

// TestGolden compares every kubeadm file of every node of every lab in
// labs/, rendered with the placeholder secrets, with
// testdata/golden/<lab>/<node>/<path>. `go test ./templates/kubeadm -update`
// rewrites them.
func TestGolden(t *testing.T) {
	all := labs(t)
	for _, name := range sortedNames(all) {
		l := all[name]
		for i := range l.Nodes {
			n := &l.Nodes[i]
			t.Run(name+"/"+n.Name, func(t *testing.T) {
				files, err := Files(l, n, Placeholders())
				if err != nil {
					t.Fatal(err)
				}
				again, err := Files(l, n, Placeholders())
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(manifest(files), manifest(again)) {
					t.Fatal("two renderings give different files")
				}
				for i := range files {
					if !bytes.Equal(files[i].Content, again[i].Content) {
						t.Fatalf("%s: two renderings give different bytes", files[i].Path)
					}
				}
				golden.Tree(t, filepath.Join("testdata", "golden", name, n.Name), goldenFiles(files),
					*update, "go test ./templates/kubeadm -update")
			})
		}
	}
}
