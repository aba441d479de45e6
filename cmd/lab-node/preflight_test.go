//go:build linux

package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/labctl/lab/bpf/bpftest"
	"github.com/labctl/lab/bpf/preflight"
)

// The binary's JSON is what lab parses; on this kernel everything needed
// is there.
func TestPreflightCommand(t *testing.T) {
	bpftest.Require(t)
	var reports []preflight.Report
	for _, args := range [][]string{{"--cni", "builtin"}, {"--cni", "cilium", "--cilium-version", "1.18.4"}} {
		out, err := exec.Command(labNode, append([]string{"preflight", "--node-name", "n1"}, args...)...).Output()
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
