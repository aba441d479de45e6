package templates

import (
	"testing"

	"github.com/labctl/lab/internal/scripttest"
)

// TestRenderedScripts parses every shell script rendered for every node of
// every lab in labs/ (keepalived's check script) with its shell and runs
// shellcheck on it.
func TestRenderedScripts(t *testing.T) {
	all := labs(t)
	n := 0
	for name, l := range all {
		for i := range l.Nodes {
			for _, f := range renderNode(t, l, &l.Nodes[i]) {
				if f.Path == CheckScriptPath {
					n++
					scripttest.Check(t, name+"/"+l.Nodes[i].Name+":"+f.Path, string(f.Content))
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("no lab renders a script")
	}
}
