package templates

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/labctl/lab/provision/labfile"
)

// TestRoutingStudyWeek4 pins the routes of the study's router week: every
// node reaches the network it is not on, the networks behind the router
// and (the router carrying pod routes) the pod range via the router's
// address on its own network; the router forwards and has its dummies.
func TestRoutingStudyWeek4(t *testing.T) {
	l, _, err := labfile.Load("../labs/cilium-study/4w.yaml")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for i := range l.Nodes {
		n := &l.Nodes[i]
		rt := RoutingFor(l, n)
		var parts []string
		if rt.Forward {
			parts = append(parts, "forward")
		}
		for _, d := range rt.Dummies {
			parts = append(parts, fmt.Sprintf("%s=%s", d.Name, d.Address))
		}
		for _, r := range rt.Routes {
			parts = append(parts, fmt.Sprintf("%s>%s", r.To, r.Via))
		}
		if rt.PodRoutes {
			parts = append(parts, "pod-routes")
		}
		got[n.Name] = strings.Join(parts, " ")
	}
	want := map[string]string{
		"k8s-ctr": "192.168.20.0/24>192.168.10.200 10.10.1.0/24>192.168.10.200 10.10.2.0/24>192.168.10.200 172.20.0.0/16>192.168.10.200",
		"k8s-w1":  "192.168.20.0/24>192.168.10.200 10.10.1.0/24>192.168.10.200 10.10.2.0/24>192.168.10.200 172.20.0.0/16>192.168.10.200",
		"k8s-w0":  "192.168.10.0/24>192.168.20.200 10.10.1.0/24>192.168.20.200 10.10.2.0/24>192.168.20.200 172.20.0.0/16>192.168.20.200",
		"router":  "forward loop1=10.10.1.200/24 loop2=10.10.2.200/24 pod-routes",
	}
	for node, w := range want {
		if got[node] != w {
			t.Errorf("%s:\n got %s\nwant %s", node, got[node], w)
		}
	}
}

// TestRoutingNone: a lab without routers gives no node anything, so its
// nodes get no network phase files.
func TestRoutingNone(t *testing.T) {
	l, _, err := labfile.Load("../labs/ci.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for i := range l.Nodes {
		if rt := RoutingFor(l, &l.Nodes[i]); !rt.Empty() {
			t.Errorf("%s: %+v, want nothing", l.Nodes[i].Name, rt)
		}
		if files, err := NetworkFiles(l, &l.Nodes[i]); err != nil || len(files) != 0 {
			t.Errorf("%s: network files %v, %v", l.Nodes[i].Name, files, err)
		}
	}
}

// TestNetworkScriptParses runs every rendered network.sh through sh -n.
func TestNetworkScriptParses(t *testing.T) {
	l, _, err := labfile.Load("../labs/cilium-study/4w.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for i := range l.Nodes {
		files, err := NetworkFiles(l, &l.Nodes[i])
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if f.Path != NetworkScriptPath {
				continue
			}
			cmd := exec.Command("sh", "-n")
			cmd.Stdin = strings.NewReader(string(f.Content))
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("%s: sh -n: %v\n%s", l.Nodes[i].Name, err, out)
			}
		}
	}
}
