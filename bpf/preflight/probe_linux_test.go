//go:build linux

package preflight

import (
	"strings"
	"testing"

	"github.com/labctl/lab/bpf/bpftest"
)

// On this machine's kernel (6.x, root) both datapaths must be possible.
func TestProbeThisKernel(t *testing.T) {
	bpftest.Require(t)
	for _, opts := range []Options{{Node: "here", Datapath: Builtin}, {Node: "here", Datapath: Cilium, CiliumVersion: "1.18.4"}} {
		r, err := Probe(opts)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		WriteTable(&b, []Report{r})
		t.Logf("%s:\n%s", opts.Datapath, b.String())
		// This machine is no node: lab up has not mounted its bpffs
		// nor made its mounts shared. Only the kernel is judged here.
		setup := map[string]bool{}
		for _, n := range NodeSetupChecks() {
			setup[n] = true
		}
		for _, m := range r.Missing() {
			if !setup[m.Name] {
				t.Errorf("%s: missing %+v", opts.Datapath, m)
			}
		}
		for _, name := range []string{"helper bpf_redirect_neigh", "helper bpf_redirect_peer", "helper bpf_fib_lookup", "tcx"} {
			found := false
			for _, c := range r.Checks {
				found = found || (strings.HasPrefix(c.Name, name) && c.OK)
			}
			if !found {
				t.Errorf("%s: no passing check %q", opts.Datapath, name)
			}
		}
	}
	if _, err := Probe(Options{Datapath: "flannel"}); err == nil {
		t.Error("Probe accepted an unknown datapath")
	}
}
