package templates

import (
	"testing"

	"github.com/labctl/lab/internal/golden"
	"github.com/labctl/lab/provision/labfile"
	"github.com/labctl/lab/provision/provider/registry"
)

// labs loads every example lab in labs/; each one must load cleanly.
func labs(t *testing.T) map[string]*labfile.Lab {
	return golden.Labs(t, "../labs/*.yaml", "../labs/*/*.yaml")
}

// testFacts are the facts a node of l has before lab has seen it: what its
// provider says (the registry).
func testFacts(l *labfile.Lab) Facts {
	t := registry.Traits(l)
	return Facts{Interface: t.NodeInterface, Container: t.Container()}
}

// renderNode is every file of this package node n receives. The whole set,
// with the files of the sub-packages, is templates/nodefiles' business and
// golden files.
func renderNode(t *testing.T, l *labfile.Lab, n *labfile.Node) []File {
	t.Helper()
	var all []File
	for _, render := range []func() ([]File, error){
		func() ([]File, error) { return OSFiles(l, n) },
		func() ([]File, error) { return RuntimeFiles(l, n, testFacts(l)) },
		func() ([]File, error) { return LoadBalancerFiles(l, n, testFacts(l)) },
	} {
		files, err := render()
		if err != nil {
			t.Fatalf("%s: %v", n.Name, err)
		}
		all = append(all, files...)
	}
	return all
}
