//go:build linux

package daemon

import (
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/labctl/lab/bpf/bpftest"
	"github.com/labctl/lab/cmd/lab-node/internal/cniplugin"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var (
	nodeA = Node{Name: "a", InternalIP: netip.MustParseAddr("10.99.0.1"), PodCIDR: netip.MustParsePrefix("10.244.1.0/24")}
	nodeB = Node{Name: "b", InternalIP: netip.MustParseAddr("10.99.0.2"), PodCIDR: netip.MustParsePrefix("10.244.2.0/24")}
	nodeC = Node{Name: "c", InternalIP: netip.MustParseAddr("10.99.0.3"), PodCIDR: netip.MustParsePrefix("10.244.3.0/24")}
)

func TestRemoteCIDRs(t *testing.T) {
	pending := Node{Name: "d", InternalIP: netip.MustParseAddr("10.99.0.4")} // no podCIDR yet
	got := RemoteCIDRs("a", []Node{nodeA, nodeB, nodeC, pending})
	want := map[netip.Prefix]netip.Addr{nodeB.PodCIDR: nodeB.InternalIP, nodeC.PodCIDR: nodeC.InternalIP}
	if !mapsEqual(got, want) {
		t.Fatalf("RemoteCIDRs = %v, want %v", got, want)
	}
	if _, ok := findSelf("d", []Node{pending}); ok {
		t.Fatal("a node without podCIDR is ready")
	}
}

func TestFromAPI(t *testing.T) {
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "w1"},
		Spec:       corev1.NodeSpec{PodCIDR: "10.244.5.0/24", PodCIDRs: []string{"fd00::/64", "10.244.5.0/24"}},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeHostName, Address: "w1"},
			{Type: corev1.NodeInternalIP, Address: "fd00::5"},
			{Type: corev1.NodeInternalIP, Address: "192.168.56.15"},
		}},
	}
	got, err := FromAPI(n)
	if err != nil || got.InternalIP != netip.MustParseAddr("192.168.56.15") || got.PodCIDR != netip.MustParsePrefix("10.244.5.0/24") {
		t.Fatalf("FromAPI = %+v, %v", got, err)
	}
	_, err = FromAPI(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "new"}})
	if err == nil || !strings.Contains(err.Error(), "podCIDR") || !strings.Contains(err.Error(), "InternalIP") {
		t.Fatalf("FromAPI of a bare node: %v", err)
	}
}

// SyncRoutes in a network namespace: adds, replaces, removes its own
// routes and leaves everybody else's alone.
func TestSyncRoutes(t *testing.T) {
	bpftest.Require(t)
	ns := bpftest.Netns(t, "routes")
	bpftest.IP(t, "-n", ns, "link", "add", "lan0", "type", "veth", "peer", "name", "lan1")
	bpftest.IP(t, "-n", ns, "link", "set", "lan0", "up")
	bpftest.IP(t, "-n", ns, "addr", "add", "10.99.0.1/24", "dev", "lan0")
	bpftest.IP(t, "-n", ns, "route", "add", "10.250.0.0/24", "via", "10.99.0.9") // not ours
	sync := func(nodes ...Node) {
		t.Helper()
		if err := bpftest.Do(ns, func() error { return SyncRoutes(RemoteCIDRs("a", nodes)) }); err != nil {
			t.Fatal(err)
		}
	}
	routes := func() string {
		return bpftest.IP(t, "-n", ns, "route", "show")
	}
	sync(nodeA, nodeB, nodeC)
	out := routes()
	for _, want := range []string{"10.244.2.0/24 via 10.99.0.2 dev lan0 proto 177", "10.244.3.0/24 via 10.99.0.3 dev lan0 proto 177"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	moved := nodeC
	moved.InternalIP = netip.MustParseAddr("10.99.0.33")
	sync(nodeA, moved) // b gone, c moved
	out = routes()
	if strings.Contains(out, "10.244.2.0/24") || !strings.Contains(out, "10.244.3.0/24 via 10.99.0.33") {
		t.Errorf("after b left and c moved:\n%s", out)
	}
	if !strings.Contains(out, "10.250.0.0/24 via 10.99.0.9") {
		t.Errorf("someone else's route was removed:\n%s", out)
	}
	// A node not on this node's network is an error, the others still sync.
	far := Node{Name: "far", InternalIP: netip.MustParseAddr("172.31.0.1"), PodCIDR: netip.MustParsePrefix("10.244.9.0/24")}
	var err error
	bpftest.Do(ns, func() error { err = SyncRoutes(RemoteCIDRs("a", []Node{nodeA, nodeB, far})); return nil })
	if err == nil || !strings.Contains(err.Error(), "10.244.9.0/24") {
		t.Errorf("unreachable node: err = %v", err)
	}
	if !strings.Contains(routes(), "10.244.2.0/24 via 10.99.0.2") {
		t.Errorf("one bad node stopped the others:\n%s", routes())
	}
}

func TestFileSource(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nodes.json")
	ctx, cancel := context.WithCancel(t.Context())
	got := make(chan []Node, 10)
	done := make(chan error, 1)
	go func() {
		done <- FileSource{Path: path, Poll: 10 * time.Millisecond}.Watch(ctx, func(n []Node) { got <- n })
	}()
	if n := <-got; len(n) != 0 {
		t.Fatalf("missing file: %v", n)
	}
	if err := os.WriteFile(path, []byte(`[{"name":"a","internalIP":"10.99.0.1","podCIDR":"10.244.1.0/24"},{"name":"b"}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	n := <-got
	if len(n) != 2 || n[0] != nodeA || n[1].Name != "b" || n[1].PodCIDR.IsValid() {
		t.Fatalf("nodes = %+v", n)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestWriteCNIConfigIsReadByThePlugin(t *testing.T) {
	dir := t.TempDir()
	path, err := WriteCNIConfig(dir, cniplugin.Settings{PodCIDR: "10.244.1.0/24", MTU: 1450, BPFRoot: "/sys/fs/bpf/lab", AttachMode: "clsact"})
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("config file: %v %v", fi, err)
	}
	b, _ := os.ReadFile(path)
	var list struct {
		CNIVersion, Name string
		Plugins          []map[string]any
	}
	if err := json.Unmarshal(b, &list); err != nil || len(list.Plugins) != 1 || list.CNIVersion != "1.0.0" {
		t.Fatalf("conflist: %v\n%s", err, b)
	}
	// A runtime hands the plugin its entry with the list's name and version.
	list.Plugins[0]["name"], list.Plugins[0]["cniVersion"] = list.Name, list.CNIVersion
	plugin, _ := json.Marshal(list.Plugins[0])
	conf, err := cniplugin.ParseNetConf(plugin)
	if err != nil {
		t.Fatalf("%v\n%s", err, plugin)
	}
	if conf.Type != cniplugin.PluginType || conf.PodCIDR != "10.244.1.0/24" || conf.MTU != 1450 || conf.StateDir != cniplugin.DefaultStateDir {
		t.Fatalf("plugin sees %+v", conf)
	}
}

func TestWriteMetrics(t *testing.T) {
	var b strings.Builder
	err := WriteMetrics(&b, []PodStats{{IP: netip.MustParseAddr("10.244.1.2"), Pod: "default/web", Ifindex: 9}})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"# TYPE lab_node_pod_rx_packets_total counter\n",
		`lab_node_pod_tx_bytes_total{ip="10.244.1.2",pod="default/web"} 0` + "\n",
		"lab_node_endpoints 1\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, b.String())
		}
	}
}
