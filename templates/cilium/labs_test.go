package cilium

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/labctl/lab/internal/golden"
	"github.com/labctl/lab/provision/labfile"
	"github.com/labctl/lab/provision/provider/registry"
	"github.com/labctl/lab/templates"
)

// factsFor is the guess `lab up` starts from before it looks at the nodes:
// what the lab's provider says of them.
func factsFor(l *labfile.Lab) templates.Facts {
	t := registry.Traits(l)
	return templates.Facts{Interface: t.NodeInterface, Container: t.Container()}
}

// ciliumLabs loads every lab in labs/ that uses Cilium, by file name.
func ciliumLabs(t *testing.T) map[string]*labfile.Lab {
	t.Helper()
	out := map[string]*labfile.Lab{}
	for name, l := range golden.Labs(t, "../../labs/*.yaml", "../../labs/*/*.yaml") {
		if l.CNI.Type == labfile.CNICilium {
			out[name] = l
		}
	}
	if len(out) == 0 {
		t.Fatal("no lab in ../../labs uses cni.type cilium: nothing to judge")
	}
	return out
}

func sorted[T any](m map[string]T) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// labYAML is a container lab with Cilium: cps control planes (with a VIP
// when there is more than one), workers workers, kube-proxy on or off, and
// extra appended under cni.cilium (a values: block).
func labYAML(name string, cps, workers int, kubeProxy bool, extra string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: lab/v1alpha1
kind: Lab
metadata:
  name: %s
provider:
  type: docker
networks:
  - name: lab
    cidr: 172.31.0.0/24
  - name: far
    cidr: 172.31.1.0/24
    gateway: 172.31.1.1
kubernetes:
  version: v1.34.12
  podSubnet: 10.200.0.0/16
  kubeProxy: %t
`, name, kubeProxy)
	if cps > 1 {
		b.WriteString("controlPlane:\n  mode: vip\n  vip: 172.31.0.10\n")
	}
	b.WriteString("cni:\n  type: cilium\n  cilium:\n    version: 1.18.4\n")
	b.WriteString(extra)
	b.WriteString("nodes:\n")
	for i := 1; i <= cps; i++ {
		fmt.Fprintf(&b, "  - name: cp%d\n    roles: [control-plane]\n    addresses: {lab: 172.31.0.%d}\n", i, 10+i)
	}
	for i := 1; i <= workers; i++ {
		fmt.Fprintf(&b, "  - name: w%d\n    roles: [worker]\n    addresses: {lab: 172.31.0.%d, far: 172.31.1.%d}\n", i, 20+i, 20+i)
	}
	return b.String()
}

func parseLab(t *testing.T, name, src string) *labfile.Lab {
	t.Helper()
	l, _, err := labfile.Parse(name+".yaml", []byte(src))
	if err != nil {
		t.Fatalf("%s: %v\n%s", name, err, src)
	}
	return l
}

// behindRouter moves the last worker off the node network: it keeps only
// its address on the routed network "far", like the study's k8s-w0 on
// 192.168.20.0/24 behind the router VM. The lab has no router node, which
// the loader would ask for, so the change is made after loading.
func behindRouter(l *labfile.Lab) *labfile.Lab {
	w := l.Workers()
	n := w[len(w)-1]
	delete(n.Addresses, l.Kubernetes.NodeNetwork)
	return l
}

// variant is a lab the tests render besides those in labs/, with what it
// must produce.
type variant struct {
	lab *labfile.Lab
	// host and port are the API endpoint the agents must be given.
	host string
	port int
	kpr  bool
	// routing is native or tunnel.
	routing string
	// autoRoutes is autoDirectNodeRoutes in native mode.
	autoRoutes bool
	operators  int
	// ipam and nativeCIDR are the user's, when given ("" means lab's:
	// kubernetes, and podSubnet).
	ipam       string
	nativeCIDR string
}

func (v variant) ipamMode() string {
	if v.ipam == "" {
		return "kubernetes"
	}
	return v.ipam
}

func (v variant) nativeRoutingCIDR() string {
	if v.nativeCIDR == "" {
		return v.lab.Kubernetes.PodSubnet
	}
	return v.nativeCIDR
}

// variants are the labs that exercise each derived value's other branch.
func variants(t *testing.T) map[string]variant {
	t.Helper()
	return map[string]variant{
		// Three control planes behind the Keepalived VIP, HAProxy on
		// the shared-node port: the agents must use the VIP, not cp1.
		"vip": {lab: parseLab(t, "vip", labYAML("vip", 3, 2, false, "")),
			host: "172.31.0.10", port: labfile.DefaultSharedLBPort, kpr: true,
			routing: RoutingNative, autoRoutes: true, operators: 2},
		"kube-proxy-on": {lab: parseLab(t, "kube-proxy-on", labYAML("kube-proxy-on", 1, 1, true, "")),
			host: "172.31.0.11", port: labfile.DefaultAPIPort, kpr: false,
			routing: RoutingNative, autoRoutes: true, operators: 2},
		"single-node": {lab: parseLab(t, "single-node", labYAML("single-node", 1, 0, false, "")),
			host: "172.31.0.11", port: labfile.DefaultAPIPort, kpr: true,
			routing: RoutingNative, autoRoutes: true, operators: 1},
		"two-networks": {lab: behindRouter(parseLab(t, "two-networks", labYAML("two-networks", 1, 2, false, ""))),
			host: "172.31.0.11", port: labfile.DefaultAPIPort, kpr: true,
			routing: RoutingTunnel, operators: 2},
		// The study's BGP week: nodes across a router, native routing,
		// routes from BGP, so no direct routes.
		"bgp": {lab: behindRouter(parseLab(t, "bgp", labYAML("bgp", 1, 2, false,
			"    values:\n      routingMode: native\n      bgpControlPlane:\n        enabled: true\n"))),
			host: "172.31.0.11", port: labfile.DefaultAPIPort, kpr: true,
			routing: RoutingNative, autoRoutes: false, operators: 2},
		// An offline lab: the images lab built, never pulled.
		"build": {lab: parseLab(t, "build", offline(labYAML("build", 3, 1, false, ""))),
			host: "172.31.0.10", port: labfile.DefaultSharedLBPort, kpr: true,
			routing: RoutingNative, autoRoutes: true, operators: 2},
		// An offline lab whose user asks for everything that needs an
		// image lab does not build: all of it stays off, and relay,
		// whose image lab builds, is on.
		"build-asks-offline": {lab: parseLab(t, "build-asks-offline", offline(labYAML("build-asks-offline", 1, 1, false, askOffline))),
			host: "172.31.0.11", port: labfile.DefaultAPIPort, kpr: true,
			routing: RoutingNative, autoRoutes: true, operators: 2},
	}
}

// offline makes a lab of labYAML build its artifacts on this machine.
func offline(src string) string {
	return strings.Replace(src, "kubernetes:\n", "kubernetes:\n  artifacts: build\n", 1)
}

// askOffline asks, under cni.cilium, for every value an offline lab leaves
// out (labfile.CiliumOfflineValues), and for Hubble Relay.
const askOffline = `    values:
      l7Proxy: true
      envoy:
        enabled: true
      envoyConfig:
        enabled: true
      ingressController:
        enabled: true
      gatewayAPI:
        enabled: true
      loadBalancer:
        l7:
          backend: envoy
      hubble:
        relay:
          enabled: true
        ui:
          enabled: true
        tls:
          auto:
            method: cronJob
      clustermesh:
        useAPIServer: true
      nodeinit:
        enabled: true
      preflight:
        enabled: true
      authentication:
        mutual:
          spire:
            enabled: true
            install:
              enabled: true
`
