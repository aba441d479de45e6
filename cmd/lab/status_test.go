package main

import (
	"strings"
	"testing"

	"github.com/labctl/lab/provision"
	"github.com/labctl/lab/provision/phases"
)

// TestWriteCiliumAgents: lab status labels the Cilium rows and says where
// they come from, one row per node; without a list it says why.
func TestWriteCiliumAgents(t *testing.T) {
	var b strings.Builder
	st := &provision.LabStatus{Cilium: []phases.CiliumAgent{
		{Node: "cp1", Pod: "cilium-4bq9z", Ready: true, Restarts: 3, Status: "OK"},
		{Node: "w1", Status: "no Cilium agent pod on this node"},
	}}
	if err := writeCiliumAgents(&b, st); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"Cilium agents (kubectl get pods -l k8s-app=cilium; cilium-dbg status --brief", "NODE", "CILIUM-DBG STATUS",
		"cp1   cilium-4bq9z  true   3         OK", "w1    -             false  0         no Cilium agent pod on this node"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	b.Reset()
	if err := writeCiliumAgents(&b, &provision.LabStatus{CiliumError: "not asked: the API is not healthy"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "Cilium agents: not asked: the API is not healthy") {
		t.Errorf("status without agents:\n%s", b.String())
	}
}
