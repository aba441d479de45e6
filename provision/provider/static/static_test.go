package static

import (
	"context"
	"testing"

	"github.com/labctl/lab/provision/labfile"
	"github.com/labctl/lab/provision/provider"
)

const labYAML = `apiVersion: lab/v1alpha1
kind: Lab
metadata: {name: metal}
provider: {type: static}
networks:
  - {name: lan, cidr: 192.168.10.0/24}
ssh: {user: ops, port: 2200}
nodes:
  - name: a
    roles: [control-plane]
    addresses: {lan: 192.168.10.11}
  - name: b
    roles: [worker]
    addresses: {lan: 192.168.10.12}
    ssh: {host: gw.example.net, port: 2212, user: admin}
`

func TestNodesAreTheLabFileTargets(t *testing.T) {
	lab, _, err := labfile.Parse("metal.yaml", []byte(labYAML))
	if err != nil {
		t.Fatal(err)
	}
	var p Provider
	ctx := context.Background()
	if err := p.Create(ctx, lab); err != nil {
		t.Fatalf("Create: %v", err)
	}
	got, err := p.Nodes(ctx, lab)
	if err != nil {
		t.Fatal(err)
	}
	want := []provider.NodeInfo{
		{Name: "a", State: provider.StateUnknown, Host: "192.168.10.11", Port: 2200, User: "ops"},
		{Name: "b", State: provider.StateUnknown, Host: "gw.example.net", Port: 2212, User: "admin"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d nodes, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Name != w.Name || g.State != w.State || g.Host != w.Host || g.Port != w.Port || g.User != w.User || len(g.HostKeys) != 0 || g.KeyFile != "" {
			t.Errorf("node %d = %+v, want %+v", i, g, w)
		}
	}
	if err := p.Delete(ctx, lab); err != nil {
		t.Fatalf("Delete: %v", err)
	}
}
