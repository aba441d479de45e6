//go:build linux

package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/labctl/lab/bpf/bpftest"
	"github.com/labctl/lab/bpf/preflight"
)

// asNode runs lab-node in a mount namespace of its own set up as lab up
// sets up a Cilium node: a bpffs at /sys/fs/bpf, shared. The namespace is
// private first, so nothing propagates back to this machine.
const asNode = `mount -t bpf bpffs /sys/fs/bpf && mount --make-shared /sys/fs/bpf && exec "$0" "$@"`

// The binary's JSON is what lab parses; on this kernel everything needed
// is there, and for Cilium on a node set up as lab up sets one up.
func TestPreflightCommand(t *testing.T) {
	bpftest.Require(t, "unshare")
	var reports []preflight.Report
	for _, args := range [][]string{{"--cni", "builtin"}, {"--cni", "cilium", "--cilium-version", "1.18.4"}} {
		cmd := exec.Command(labNode, append([]string{"preflight", "--node-name", "n1"}, args...)...)
		if args[1] == "cilium" {
			cmd = exec.Command("unshare", append([]string{"--mount", "--propagation", "private", "sh", "-c", asNode, labNode, "preflight", "--node-name", "n1"}, args...)...)
		}
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("preflight %v: %v\n%s", args, err, out)
		}
		r, err := preflight.Parse(out)
		if err != nil {
			t.Fatal(err)
		}
		if !r.OK || r.Node != "n1" || r.Datapath != args[1] {
			t.Errorf("report %+v", r)
		}
		reports = append(reports, r)
	}
	var b strings.Builder
	preflight.WriteTable(&b, reports)
	t.Logf("\n%s", b.String())
	if strings.Count(b.String(), "\n") < 2*10 {
		t.Errorf("table too short:\n%s", b.String())
	}
	// Unknown datapath: an error, not a report.
	if err := exec.Command(labNode, "preflight", "--cni", "flannel").Run(); err == nil {
		t.Error("preflight --cni flannel succeeded")
	}
}
