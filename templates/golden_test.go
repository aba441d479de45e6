package templates

import (
	"bytes"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/labctl/lab/provision/labfile"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the current templates")

// labs loads every example lab in labs/; each one must load cleanly.
func labs(t *testing.T) map[string]*labfile.Lab {
	t.Helper()
	paths, err := filepath.Glob("../labs/*.yaml")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no labs in ../labs: %v", err)
	}
	out := map[string]*labfile.Lab{}
	for _, p := range paths {
		l, _, err := labfile.Load(p)
		if err != nil {
			t.Fatalf("load %s: %v", p, err)
		}
		out[strings.TrimSuffix(filepath.Base(p), ".yaml")] = l
	}
	return out
}

func renderNode(t *testing.T, l *labfile.Lab, n *labfile.Node) []File {
	t.Helper()
	files, err := NodeFiles(l, n, DefaultFacts(l, n))
	if err != nil {
		t.Fatalf("NodeFiles(%s): %v", n.Name, err)
	}
	return files
}

// manifest lists a node's files with their modes, so that the golden tests
// also catch a file that appears, disappears or changes mode.
func manifest(files []File) []byte {
	var b bytes.Buffer
	for _, f := range files {
		fmt.Fprintf(&b, "%04o %s\n", f.Mode.Perm(), f.Path)
	}
	return b.Bytes()
}

// TestGolden compares every file of every node of every lab in labs/ with
// testdata/golden/<lab>/<node>/<path>. `go test ./templates -update`
// rewrites them.
func TestGolden(t *testing.T) {
	for name, l := range labs(t) {
		for i := range l.Nodes {
			n := &l.Nodes[i]
			t.Run(name+"/"+n.Name, func(t *testing.T) {
				dir := filepath.Join("testdata", "golden", name, n.Name)
				files := renderNode(t, l, n)
				want := map[string][]byte{"FILES": manifest(files)}
				for _, f := range files {
					want[filepath.FromSlash(strings.TrimPrefix(f.Path, "/"))] = f.Content
				}
				if *update {
					if err := os.RemoveAll(dir); err != nil {
						t.Fatal(err)
					}
					for rel, content := range want {
						p := filepath.Join(dir, rel)
						if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
							t.Fatal(err)
						}
						if err := os.WriteFile(p, content, 0o644); err != nil {
							t.Fatal(err)
						}
					}
					return
				}
				have := map[string][]byte{}
				err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
					if err != nil || d.IsDir() {
						return err
					}
					rel, _ := filepath.Rel(dir, p)
					have[rel], err = os.ReadFile(p)
					return err
				})
				if err != nil {
					t.Fatalf("read golden files (run go test ./templates -update): %v", err)
				}
				for rel, content := range want {
					got, ok := have[rel]
					switch {
					case !ok:
						t.Errorf("%s: no golden file (run go test ./templates -update)", rel)
					case !bytes.Equal(got, content):
						t.Errorf("%s differs from its golden file (run go test ./templates -update and review the diff):\n%s", rel, content)
					}
				}
				for rel := range have {
					if _, ok := want[rel]; !ok {
						t.Errorf("%s: golden file for a file the node no longer gets", rel)
					}
				}
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
			a := renderNode(t, l, &l.Nodes[i])
			b := renderNode(t, second[name], &second[name].Nodes[i])
			if !bytes.Equal(manifest(a), manifest(b)) {
				t.Fatalf("%s/%s: file lists differ:\n%s\n%s", name, l.Nodes[i].Name, manifest(a), manifest(b))
			}
			for j := range a {
				if !bytes.Equal(a[j].Content, b[j].Content) {
					t.Errorf("%s/%s: %s differs between two renders", name, l.Nodes[i].Name, a[j].Path)
				}
			}
		}
	}
}
