package cilium

import (
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/labctl/lab/provision/artifacts"
	"github.com/labctl/lab/provision/labfile"
	"github.com/labctl/lab/templates"
)

// get walks a dotted path through nested values maps.
func get(v map[string]any, path string) (any, bool) {
	parts := strings.Split(path, ".")
	var cur any = v
	for _, p := range parts {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[p]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func want(t *testing.T, v map[string]any, path string, w any) {
	t.Helper()
	got, ok := get(v, path)
	if !ok {
		t.Errorf("%s is not set, want %v", path, w)
		return
	}
	if !reflect.DeepEqual(got, w) {
		t.Errorf("%s = %#v, want %#v", path, got, w)
	}
}

func absent(t *testing.T, v map[string]any, path string) {
	t.Helper()
	if got, ok := get(v, path); ok {
		t.Errorf("%s = %#v, want it unset", path, got)
	}
}

func mustValues(t *testing.T, l *labfile.Lab) map[string]any {
	t.Helper()
	v, err := Values(l, factsFor(l))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestStudyLab checks the values of the Cilium study lab against what the
// study group sets by hand (../shared/STUDY.md), with the API endpoint
// being the lab's.
func TestStudyLab(t *testing.T) {
	l := ciliumLabs(t)["cilium-study"]
	if l == nil {
		t.Fatal("labs/cilium-study.yaml is missing")
	}
	v := mustValues(t, l)
	want(t, v, "k8sServiceHost", "192.168.10.100")
	want(t, v, "k8sServicePort", 6443)
	want(t, v, "kubeProxyReplacement", true)
	want(t, v, "routingMode", "native")
	want(t, v, "ipv4NativeRoutingCIDR", "10.244.0.0/16")
	want(t, v, "autoDirectNodeRoutes", true)
	want(t, v, "ipam.mode", "kubernetes")
	want(t, v, "k8s.requireIPv4PodCIDR", true)
	want(t, v, "devices", []any{"eth1"})
	want(t, v, "bpf.masquerade", true)
	want(t, v, "operator.replicas", 2)
	// The user's own values came through the merge.
	want(t, v, "hubble.relay.enabled", true)
	want(t, v, "hubble.ui.service.nodePort", 30003)
	want(t, v, "installNoConntrackIptablesRules", true)
	want(t, v, "endpointRoutes.enabled", true)
	absent(t, v, "tunnelProtocol")
	absent(t, v, "l2announcements")
	absent(t, v, "bgpControlPlane")
}

// TestVariants covers the other branch of every derived value.
func TestVariants(t *testing.T) {
	for name, c := range variants(t) {
		t.Run(name, func(t *testing.T) {
			v := mustValues(t, c.lab)
			want(t, v, "k8sServiceHost", c.host)
			want(t, v, "k8sServicePort", c.port)
			want(t, v, "kubeProxyReplacement", c.kpr)
			want(t, v, "operator.replicas", c.operators)
			want(t, v, "devices", []any{"eth0"})
			want(t, v, "ipam.mode", "kubernetes")
			want(t, v, "routingMode", c.routing)
			if c.kpr {
				want(t, v, "bpf.masquerade", true)
			} else {
				absent(t, v, "bpf")
			}
			switch c.routing {
			case RoutingNative:
				want(t, v, "ipv4NativeRoutingCIDR", "10.200.0.0/16")
				want(t, v, "autoDirectNodeRoutes", c.autoRoutes)
				absent(t, v, "tunnelProtocol")
			case RoutingTunnel:
				want(t, v, "tunnelProtocol", "vxlan")
				absent(t, v, "ipv4NativeRoutingCIDR")
				absent(t, v, "autoDirectNodeRoutes")
			}
		})
	}
}

// TestVIPNotAControlPlane makes sure no control plane's own address leaks
// into the values of a vip lab: the agents would lose the API with it.
func TestVIPNotAControlPlane(t *testing.T) {
	l := variants(t)["vip"].lab
	out, err := ValuesYAML(l, factsFor(l))
	if err != nil {
		t.Fatal(err)
	}
	for _, cp := range l.ControlPlanes() {
		if ip := l.NodeIP(cp).String(); strings.Contains(string(out), ip) {
			t.Errorf("values name control plane %s (%s):\n%s", cp.Name, ip, out)
		}
	}
}

// TestUserValuesWin merges user values over lab's: maps key by key, lists
// replaced, scalars replaced, lab's other keys kept.
func TestUserValuesWin(t *testing.T) {
	l := parseLab(t, "override", labYAML("override", 3, 1, false, `    values:
      operator:
        replicas: 3
        prometheus:
          enabled: true
      devices: [eth0, eth9]
      k8s:
        requireIPv4PodCIDR: false
      ipam:
        operator:
          clusterPoolIPv4MaskSize: 26
      k8sServiceHost: api.example.test
      bpf:
        masquerade: false
      l2announcements:
        enabled: true
      hubble:
        relay:
          enabled: true
        ui:
          enabled: true
`))
	v := mustValues(t, l)
	want(t, v, "operator.replicas", 3)
	want(t, v, "operator.prometheus.enabled", true)
	want(t, v, "devices", []any{"eth0", "eth9"})
	want(t, v, "k8s.requireIPv4PodCIDR", false)
	want(t, v, "ipam.mode", "kubernetes")
	want(t, v, "ipam.operator.clusterPoolIPv4MaskSize", 26)
	want(t, v, "k8sServiceHost", "api.example.test")
	want(t, v, "k8sServicePort", labfile.DefaultSharedLBPort)
	want(t, v, "bpf.masquerade", false)
	want(t, v, "l2announcements.enabled", true)
	want(t, v, "hubble.relay.enabled", true)
	want(t, v, "kubeProxyReplacement", true)
}

// TestUserRoutingMode: a user's routingMode picks which set of routing
// values lab derives, and a pair cilium-agent refuses is an error here.
func TestUserRoutingMode(t *testing.T) {
	tunnel := parseLab(t, "tunnel", labYAML("tunnel", 1, 1, false, "    values:\n      routingMode: tunnel\n"))
	v := mustValues(t, tunnel)
	want(t, v, "routingMode", "tunnel")
	want(t, v, "tunnelProtocol", "vxlan")
	absent(t, v, "autoDirectNodeRoutes")
	absent(t, v, "ipv4NativeRoutingCIDR")

	geneve := parseLab(t, "geneve", labYAML("geneve", 1, 1, false, "    values:\n      routingMode: tunnel\n      tunnelProtocol: geneve\n"))
	want(t, mustValues(t, geneve), "tunnelProtocol", "geneve")

	for name, extra := range map[string]string{
		"tunnel with direct routes": "    values:\n      routingMode: tunnel\n      autoDirectNodeRoutes: true\n",
		"unknown routing mode":      "    values:\n      routingMode: bridged\n",
	} {
		l := parseLab(t, "bad", labYAML("bad", 1, 1, false, extra))
		if _, err := Values(l, factsFor(l)); err == nil {
			t.Errorf("%s: no error", name)
		} else if !strings.Contains(err.Error(), "routingMode") {
			t.Errorf("%s: error %q does not name routingMode", name, err)
		}
	}
}

// TestUserKubeProxyReplacement: turning kube-proxy replacement on by hand
// brings eBPF masquerading with it, as lab does when it turns it on.
func TestUserKubeProxyReplacement(t *testing.T) {
	for _, val := range []string{"true", `"true"`} {
		l := parseLab(t, "kpr", labYAML("kpr", 1, 1, true, "    values:\n      kubeProxyReplacement: "+val+"\n"))
		v := mustValues(t, l)
		want(t, v, "bpf.masquerade", true)
	}
}

// TestValuesDoNotAlias: the returned map shares nothing with the lab, so
// changing one can never change the other.
func TestValuesDoNotAlias(t *testing.T) {
	l := ciliumLabs(t)["cilium-study"]
	before, err := yaml.Marshal(l.CNI.Cilium.Values)
	if err != nil {
		t.Fatal(err)
	}
	v := mustValues(t, l)
	v["hubble"].(map[string]any)["relay"].(map[string]any)["enabled"] = false
	v["hubble"].(map[string]any)["extra"] = 1
	after, err := yaml.Marshal(l.CNI.Cilium.Values)
	if err != nil {
		t.Fatal(err)
	}
	if string(before) != string(after) {
		t.Errorf("changing the values changed the lab:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	want(t, mustValues(t, l), "hubble.relay.enabled", true)
}

// TestNonStringKeys: mappings that decode as map[any]any are merged like
// any other, and a key that is not a string is an error naming its path.
func TestNonStringKeys(t *testing.T) {
	l := parseLab(t, "keys", labYAML("keys", 1, 1, false, ""))
	l.CNI.Cilium.Values = map[string]any{"operator": map[any]any{"replicas": 5}}
	v := mustValues(t, l)
	want(t, v, "operator.replicas", 5)

	l.CNI.Cilium.Values = map[string]any{"operator": map[any]any{1: "x"}}
	if _, err := Values(l, factsFor(l)); err == nil || !strings.Contains(err.Error(), "cni.cilium.values.operator") {
		t.Errorf("non-string key: got %v, want an error naming cni.cilium.values.operator", err)
	}
}

func TestRejects(t *testing.T) {
	builtin := parseLab(t, "builtin", strings.Replace(
		labYAML("builtin", 1, 1, true, ""), "  type: cilium\n  cilium:\n    version: 1.18.4\n", "  type: builtin\n", 1))
	if _, err := Values(builtin, templates.Facts{Interface: "eth0"}); err == nil {
		t.Error("a builtin-CNI lab got Cilium values")
	}
	l := parseLab(t, "iface", labYAML("iface", 1, 1, false, ""))
	for _, bad := range []string{"", "eth 0", "a/b", "averyveryverylongname"} {
		if _, err := Values(l, templates.Facts{Interface: bad}); err == nil {
			t.Errorf("interface %q accepted", bad)
		}
	}
	if _, err := Values(l, templates.Facts{Interface: "eth+"}); err != nil {
		t.Errorf("Cilium's wildcard eth+ rejected: %v", err)
	}
}

// TestOfflineImages: an offline lab's values name the images lab built,
// by full reference, never pulled, for the agent, the operator and Hubble
// Relay; a lab with another artifact source leaves the chart's images.
func TestOfflineImages(t *testing.T) {
	l := variants(t)["build"].lab
	refs := artifacts.CiliumImageRefs(l.CNI.Cilium.Version)
	v := mustValues(t, l)
	for prefix, ref := range map[string]string{"image": refs.Agent, "operator.image": refs.Operator, "hubble.relay.image": refs.Relay} {
		want(t, v, prefix+".override", ref)
		want(t, v, prefix+".pullPolicy", "Never")
		want(t, v, prefix+".useDigest", false)
	}
	want(t, v, "image.override", "lab.local/cilium/cilium:v1.18.4")
	want(t, v, "operator.replicas", 2)

	online := mustValues(t, variants(t)["vip"].lab)
	for _, p := range []string{"image", "operator.image", "hubble", "l7Proxy", "envoy"} {
		absent(t, online, p)
	}
}

// TestOfflineValuesForced: whatever the user asks, an offline lab's values
// turn off everything that needs an image lab does not build; the user's
// other values (Hubble Relay) stay.
func TestOfflineValuesForced(t *testing.T) {
	l := variants(t)["build-asks-offline"].lab
	v := mustValues(t, l)
	for _, o := range labfile.CiliumOfflineValues() {
		// The test lab must ask for every one, or it proves nothing.
		if u, ok := l.CNI.Cilium.Value(o.Path); !ok || !o.Asks(u) {
			t.Errorf("askOffline does not ask for %s", o.Path)
		}
		want(t, v, o.Path, o.Off)
	}
	want(t, v, "hubble.relay.enabled", true)
	want(t, v, "authentication.mutual.spire.install.enabled", true)

	// Without asking, the same values are set all the same: the chart's
	// defaults (l7Proxy, envoy.enabled) would otherwise turn them on.
	quiet := mustValues(t, variants(t)["build"].lab)
	for _, o := range labfile.CiliumOfflineValues() {
		want(t, quiet, o.Path, o.Off)
	}
}
