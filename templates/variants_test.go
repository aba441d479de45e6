package templates

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/labctl/lab/provision/labfile"
)

// variantLab is a vip-mode lab whose controlPlane and extra settings the
// test chooses, for the cases labs/ does not cover.
func variantLab(t *testing.T, provider, controlPlane, kubernetes string, cps int) *labfile.Lab {
	t.Helper()
	var nodes strings.Builder
	for i := 1; i <= cps; i++ {
		fmt.Fprintf(&nodes, "  - {name: cp%d, roles: [control-plane], addresses: {lab: 10.5.0.%d}}\n", i, 10+i)
	}
	doc := fmt.Sprintf(`apiVersion: lab/v1alpha1
kind: Lab
metadata: {name: variant}
provider: {type: %s}
networks: [{name: lab, cidr: 10.5.0.0/24}]
kubernetes: {%s}
controlPlane: {%s}
nodes:
%s  - {name: w1, roles: [worker], addresses: {lab: 10.5.0.21}}
`, provider, kubernetes, controlPlane, nodes.String())
	l, _, err := labfile.Parse("variant.yaml", []byte(doc))
	if err != nil {
		t.Fatalf("variant lab:\n%s\n%v", doc, err)
	}
	return l
}

func fileOf(t *testing.T, l *labfile.Lab, node, path string) string {
	t.Helper()
	n := l.Node(node)
	return string(pick(t, renderNode(t, l, n), path)[0].Content)
}

func TestKeepalivedPolicy(t *testing.T) {
	l := variantLab(t, "docker", "mode: vip, vip: 10.5.0.10", "", 3)
	prios := map[int]bool{}
	last := 256
	for _, n := range l.LoadBalancers() {
		conf := fileOf(t, l, n.Name, KeepalivedConfigPath)
		for _, want := range []string{"vrrp_version 3", "state BACKUP", "nopreempt", "advert_int 0.1",
			"vrrp_startup_delay 1.5", "interface eth0", "10.5.0.10/24 dev eth0", "unicast_src_ip " + l.NodeIP(n).String()} {
			if !strings.Contains(conf, want) {
				t.Errorf("%s: keepalived.conf lacks %q", n.Name, want)
			}
		}
		if strings.Contains(conf, "authentication {") || strings.Contains(conf, "state MASTER") {
			t.Errorf("%s: keepalived.conf has authentication or state MASTER", n.Name)
		}
		for _, p := range l.LoadBalancers() {
			peer := "        " + l.NodeIP(p).String() + "\n"
			if (p.Name == n.Name) == strings.Contains(conf, peer) {
				t.Errorf("%s: peer list wrong about %s:\n%s", n.Name, p.Name, conf)
			}
		}
		m := regexp.MustCompile(`(?m)^\s*priority (\d+)$`).FindStringSubmatch(conf)
		p, _ := strconv.Atoi(m[1])
		if prios[p] || p >= last || p < 1 || p > 254 {
			t.Errorf("%s: priority %d is not distinct and descending in file order", n.Name, p)
		}
		prios[p], last = true, p
	}

	pre := variantLab(t, "docker", "mode: vip, vip: 10.5.0.10, vrrp: {preempt: true, advertInterval: 1, unicast: false}", "", 3)
	conf := fileOf(t, pre, "cp2", KeepalivedConfigPath)
	if strings.Contains(conf, "nopreempt") || strings.Contains(conf, "unicast") || !strings.Contains(conf, "advert_int 1\n") {
		t.Errorf("preempt, multicast, advertInterval 1:\n%s", conf)
	}
}

func TestHAProxyBackends(t *testing.T) {
	l := variantLab(t, "docker", "mode: vip, vip: 10.5.0.10, apiPort: 6444, lbPort: 7443", "", 3)
	cfg := fileOf(t, l, "cp1", HAProxyConfigPath)
	for _, want := range []string{"bind *:7443\n", "server cp1 10.5.0.11:6444\n", "server cp2 10.5.0.12:6444\n",
		"server cp3 10.5.0.13:6444\n", "check-ssl verify none", "uri /healthz", "balance roundrobin"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("haproxy.cfg lacks %q", want)
		}
	}
	if strings.Contains(cfg, "server w1") {
		t.Error("a worker is an HAProxy backend")
	}
	// The health endpoint moves off a port the lab uses.
	l = variantLab(t, "docker", fmt.Sprintf("mode: vip, vip: 10.5.0.10, lbPort: %d", DefaultHealthPort), "", 3)
	if cfg := fileOf(t, l, "cp1", HAProxyConfigPath); !strings.Contains(cfg, fmt.Sprintf("bind 127.0.0.1:%d\n", DefaultHealthPort+1)) {
		t.Errorf("health endpoint not moved off lbPort %d:\n%s", DefaultHealthPort, cfg)
	}
}

func TestWhoGetsWhat(t *testing.T) {
	for _, tc := range []struct {
		lab, node string
		lb, k8s   bool
	}{
		{"ha-lb", "lb1", true, false},
		{"ha-lb", "k8s-cp1", false, true},
		{"ha", "cp1", true, true},
		{"ha", "w1", false, true},
		{"cilium-study", "k8s-ctr", false, true}, // single mode: no VIP
	} {
		l, _, err := labfile.Load(filepath.Join("..", "labs", tc.lab+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		for _, f := range renderNode(t, l, l.Node(tc.node)) {
			got[f.Path] = true
		}
		for path, want := range map[string]bool{
			HAProxyConfigPath: tc.lb, KeepalivedConfigPath: tc.lb, CheckScriptPath: tc.lb,
			ContainerdConfigPath: tc.k8s, CrictlConfigPath: tc.k8s, SysctlPath: true, ModulesPath: true,
		} {
			if got[path] != want {
				t.Errorf("%s/%s: has %s = %v, want %v", tc.lab, tc.node, path, got[path], want)
			}
		}
	}
}

func TestSandboxImage(t *testing.T) {
	for _, tc := range []struct{ kube, want string }{
		{"version: v1.33.4", `sandbox_image = "registry.k8s.io/pause:3.10"`},
		{"version: v1.34.12, imageRepository: lab.local", `sandbox_image = "lab.local/pause:3.10.1"`},
	} {
		l := variantLab(t, "docker", "mode: vip, vip: 10.5.0.10", tc.kube, 3)
		if conf := fileOf(t, l, "w1", ContainerdConfigPath); !strings.Contains(conf, tc.want) {
			t.Errorf("%s: containerd config lacks %s", tc.kube, tc.want)
		}
	}
}

func TestBadInterfaceRejected(t *testing.T) {
	l := variantLab(t, "docker", "mode: vip, vip: 10.5.0.10", "", 3)
	for _, iface := range []string{"", "eth0 dev lo", "averyverylongname0", `eth0"`} {
		if _, err := LoadBalancerFiles(l, l.Node("cp1"), Facts{Interface: iface}); err == nil {
			t.Errorf("interface %q accepted", iface)
		}
	}
}

// TestKeepalivedVariantsPassKeepalived judges the configurations labs/ does
// not hold: preempt with multicast, a lone VIP node without peers, and the
// vagrant provider's eth1.
func TestKeepalivedVariantsPassKeepalived(t *testing.T) {
	needRoot(t)
	needTool(t, "ip")
	needTool(t, "keepalived")
	for i, l := range []*labfile.Lab{
		variantLab(t, "docker", "mode: vip, vip: 10.5.0.10, vrrp: {preempt: true, advertInterval: 1, unicast: false}", "", 3),
		variantLab(t, "docker", "mode: vip, vip: 10.5.0.10", "", 1),
		variantLab(t, "vagrant", "mode: vip, vip: 10.5.0.10, vrrp: {advertInterval: 0.35, routerID: 7}", "", 2),
	} {
		n := l.Node("cp1")
		dir := writeFiles(t, filepath.Join(t.TempDir(), "etc"), pick(t, renderNode(t, l, n), KeepalivedConfigPath, CheckScriptPath)...)
		ns := nsWithInterface(t, fmt.Sprint(i), testFacts(l).Interface)
		if err := keepalivedCheck(ns, dir); err != nil {
			t.Errorf("variant %d: %v", i, err)
		}
	}
}
