package cilium

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/labctl/lab/templates"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the current rendering")

// TestGolden compares the values of every Cilium lab in labs/ and of every
// variant with testdata/golden/<name>.yaml. `go test ./templates/cilium
// -update` rewrites them.
func TestGolden(t *testing.T) {
	cases := map[string]templates.Facts{}
	all := ciliumLabs(t)
	for name, l := range all {
		cases[name] = factsFor(l)
	}
	vs := variants(t)
	for name, c := range vs {
		if _, dup := all[name]; dup {
			t.Fatalf("variant %s has the name of a lab in labs/", name)
		}
		all[name] = c.lab
		cases[name] = factsFor(c.lab)
	}
	for _, name := range sorted(all) {
		t.Run(name, func(t *testing.T) {
			l := all[name]
			got, err := ValuesYAML(l, cases[name])
			if err != nil {
				t.Fatal(err)
			}
			again, err := ValuesYAML(l, cases[name])
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, again) {
				t.Fatalf("two renderings differ:\n%s\n---\n%s", got, again)
			}
			path := filepath.Join("testdata", "golden", name+".yaml")
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			golden, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./templates/cilium -update)", err)
			}
			if !bytes.Equal(got, golden) {
				t.Errorf("%s differs from the rendering (go test ./templates/cilium -update rewrites it):\ngot:\n%s\nwant:\n%s", path, got, golden)
			}
		})
	}
}
