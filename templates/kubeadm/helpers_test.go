package kubeadm

import (
	"testing"

	"github.com/labctl/lab/internal/golden"
	"github.com/labctl/lab/provision/labfile"
	"github.com/labctl/lab/templates"
)

// labs loads every lab file in labs/, by name.
func labs(t *testing.T) map[string]*labfile.Lab {
	return golden.Labs(t, "../../labs/*.yaml", "../../labs/*/*.yaml")
}

// sortedNames returns the keys of m in order, so subtests run in a stable order.
func sortedNames(m map[string]*labfile.Lab) []string { return golden.Names(m) }

// testFacts are a container node's: kube-proxy then leaves the host's
// connection-tracking table alone, which kubeadm's validation must accept.
var testFacts = templates.Facts{Interface: "eth0", Container: true}
