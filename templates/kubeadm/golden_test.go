package kubeadm

import (
	"bytes"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/labctl/lab/provision/labfile"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the current rendering")

// labs loads every lab file in labs/, by name.
func labs(t *testing.T) map[string]*labfile.Lab {
	t.Helper()
	paths, err := filepath.Glob("../../labs/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatal("no lab files in ../../labs")
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

// sortedNames returns the keys of m in order, so subtests run in a stable order.
func sortedNames(m map[string]*labfile.Lab) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

func manifest(files []File) []byte {
	var b bytes.Buffer
	for _, f := range files {
		fmt.Fprintf(&b, "%04o %s\n", f.Mode.Perm(), f.Path)
	}
	return b.Bytes()
}

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
				dir := filepath.Join("testdata", "golden", name, n.Name)
				want := map[string][]byte{}
				if len(files) > 0 {
					want["FILES"] = manifest(files)
				}
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
				err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
					if os.IsNotExist(err) && p == dir {
						return nil
					}
					if err != nil || d.IsDir() {
						return err
					}
					rel, _ := filepath.Rel(dir, p)
					have[rel], err = os.ReadFile(p)
					return err
				})
				if err != nil {
					t.Fatalf("read golden files (run go test ./templates/kubeadm -update): %v", err)
				}
				for rel, content := range want {
					got, ok := have[rel]
					switch {
					case !ok:
						t.Errorf("%s: no golden file (run go test ./templates/kubeadm -update)", rel)
					case !bytes.Equal(got, content):
						t.Errorf("%s differs from its golden file (run go test ./templates/kubeadm -update and review the diff):\n%s", rel, content)
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
