// Package cilium owns the Helm values lab hands to Cilium's chart when a lab
// file says cni.type: cilium. The values are derived from the lab (where the
// API server is, whether kube-proxy runs, whether the nodes share one L2
// network, how many nodes there are) and the user's own cni.cilium.values
// are merged over them, so that a study lab can turn on anything the chart
// offers while lab keeps the parts that must agree with the cluster it
// built.
//
// An offline lab (kubernetes.artifacts: build) runs only the Cilium images
// lab builds (agent, operator, Hubble Relay, see artifacts.CiliumImageRefs):
// its values name them and never pull, and turn off, over the user's values,
// everything that would run another image (labfile.CiliumOfflineValues;
// validation warns about each one the user asked for).
package cilium

import (
	"bytes"
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/labctl/lab/provision/artifacts"
	"github.com/labctl/lab/provision/labfile"
	"github.com/labctl/lab/templates"
	"github.com/labctl/lab/templates/helmvalues"
)

// Routing modes and the tunnel protocol lab chooses.
const (
	RoutingNative = "native"
	RoutingTunnel = "tunnel"
	TunnelVXLAN   = "vxlan"
)

// ifaceName accepts a Linux interface name (at most 15 bytes, no slash or
// white space) and Cilium's "+" wildcard (eth+).
var ifaceName = regexp.MustCompile(`^[A-Za-z0-9_.:@+-]{1,15}$`)

// Values returns the chart values for lab l: lab's derived values with the
// user's cni.cilium.values deep-merged over them (maps merge key by key,
// anything else, lists included, is replaced by the user's value). The
// result is a fresh map; l is not modified.
func Values(l *labfile.Lab, f templates.Facts) (map[string]any, error) {
	if l.CNI.Type != labfile.CNICilium {
		return nil, fmt.Errorf("lab %s: cni.type is %q, not cilium", l.Metadata.Name, l.CNI.Type)
	}
	if !ifaceName.MatchString(f.Interface) {
		return nil, fmt.Errorf("lab %s: %q is not a network interface name", l.Metadata.Name, f.Interface)
	}
	pods, err := netip.ParsePrefix(l.Kubernetes.PodSubnet)
	if err != nil || !pods.Addr().Is4() {
		return nil, fmt.Errorf("lab %s: kubernetes.podSubnet %q is not an IPv4 CIDR", l.Metadata.Name, l.Kubernetes.PodSubnet)
	}
	host, port := l.Endpoint()
	if host == "" {
		return nil, fmt.Errorf("lab %s: no API server endpoint (no control-plane node?)", l.Metadata.Name)
	}
	nodes := l.KubernetesNodes()
	if len(nodes) == 0 {
		return nil, fmt.Errorf("lab %s: no Kubernetes nodes", l.Metadata.Name)
	}
	var user map[string]any
	if l.CNI.Cilium != nil {
		if user, err = helmvalues.Normalize(l.CNI.Cilium.Values, "cni.cilium.values"); err != nil {
			return nil, fmt.Errorf("lab %s: %w", l.Metadata.Name, err)
		}
	}

	// The agents must reach the API server before there is a pod network
	// (and, without kube-proxy, before any Service works), so they are
	// given the address every kubelet uses: the VIP and HAProxy's port in
	// vip mode, never one control plane that may be down.
	v := map[string]any{
		"k8sServiceHost": host,
		"k8sServicePort": port,
	}

	// Cilium takes over Services exactly when kubeadm did not install
	// kube-proxy; both at once, or neither, leaves a broken cluster.
	v["kubeProxyReplacement"] = !l.Kubernetes.KubeProxyEnabled()
	kpr := v["kubeProxyReplacement"]
	if u, ok := user["kubeProxyReplacement"]; ok {
		kpr = u
	}
	if labfile.ChartBool(kpr) {
		// With kube-proxy gone nothing else masquerades in iptables'
		// place as cheaply; eBPF masquerading needs the eBPF NodePort
		// that kube-proxy replacement brings.
		v["bpf"] = map[string]any{"masquerade": true}
	}

	// kubeadm's kube-controller-manager hands every node a slice of
	// podSubnet (allocate-node-cidrs); Cilium uses that slice instead of a
	// pool of its own, so kubectl, kubeadm and Cilium agree on pod
	// addresses. Requiring it makes an agent wait for its podCIDR rather
	// than invent one.
	v["ipam"] = map[string]any{"mode": "kubernetes"}
	v["k8s"] = map[string]any{"requireIPv4PodCIDR": true}

	// Cilium's datapath attaches to the interface that carries the lab
	// network: auto-detection would also pick VirtualBox's NAT NIC, whose
	// 10.0.2.15 is the same on every VM.
	v["devices"] = []any{f.Interface}

	// The operator's replicas refuse to share a node (pod anti-affinity),
	// so more replicas than nodes stay Pending; two are enough for it to
	// survive one node.
	v["operator"] = map[string]any{"replicas": min(2, len(nodes))}

	// Container nodes may run without CAP_SYS_RESOURCE (Docker on a host
	// that refuses --privileged gives every capability but that one), and
	// the runtime cannot grant a pod a capability its node lacks: the
	// agent and its clean-cilium-state init container would fail with
	// "unable to apply caps". The agent only needs it to raise the
	// memlock limit, which kernels from 5.11 no longer use for BPF maps.
	// These are the chart's lists (1.17 and 1.18) less SYS_RESOURCE.
	if f.Container {
		// Container nodes without a cgroup namespace of their own (a
		// cgroup v1 Docker host) share the host's cgroup2 root, where
		// the agent attaches its socket load balancer: it would then
		// translate every connect() on the machine, other labs' pods
		// and the host's own included, to this lab's Services (seen
		// here: another lab's CoreDNS reaching this lab's API server,
		// and the host's NodePort connections sent to pod addresses it
		// cannot route). Only sockets in the node's own network
		// namespace are balanced then; pods and traffic from outside go
		// through the eBPF datapath on the devices as usual.
		v["socketLB"] = map[string]any{"hostNamespaceOnly": true}
		v["securityContext"] = map[string]any{"capabilities": map[string]any{
			"ciliumAgent": []any{"CHOWN", "KILL", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "SYS_MODULE", "SYS_ADMIN",
				"DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID"},
			"cleanCiliumState": []any{"NET_ADMIN", "SYS_MODULE", "SYS_ADMIN"},
		}}
	}

	// Pod packets go between nodes unencapsulated when every node can
	// reach every other directly: then each node is told a route to every
	// other node's podCIDR via that node (autoDirectNodeRoutes) and
	// podSubnet is routed, not masqueraded. Nodes behind a router cannot
	// be reached that way, so they get a VXLAN tunnel. A user's own
	// routingMode decides which of the two sets of values lab adds.
	shared := sharedL2(l, nodes)
	mode := RoutingTunnel
	if shared {
		mode = RoutingNative
	}
	if m, ok := user["routingMode"].(string); ok {
		mode = m
	}
	switch mode {
	case RoutingNative:
		v["routingMode"] = RoutingNative
		v["ipv4NativeRoutingCIDR"] = pods.Masked().String()
		// Across a router the routes come from elsewhere (BGP, static
		// routes on the router), never from Cilium's direct routes.
		v["autoDirectNodeRoutes"] = shared
	case RoutingTunnel:
		v["routingMode"] = RoutingTunnel
		v["tunnelProtocol"] = TunnelVXLAN
	default:
		return nil, fmt.Errorf("lab %s: cni.cilium.values.routingMode: %q is neither native nor tunnel", l.Metadata.Name, mode)
	}

	// The lab file's bgp section peers the nodes with its router
	// through Cilium's BGP control plane (the bgp phase applies the
	// resources).
	if l.BGP != nil {
		v["bgpControlPlane"] = map[string]any{"enabled": true}
	}

	build := l.Kubernetes.Artifacts == labfile.ArtifactsBuild
	if build {
		builtImages(v, artifacts.CiliumImageRefs(l.CNI.Cilium.Version))
	}

	out := helmvalues.Merge(v, user)
	if build {
		// After the user's values: what needs an image lab cannot build
		// would leave pods in ErrImageNeverPull, so it stays off, and
		// validation has warned about each value the user set.
		out = helmvalues.Merge(out, offlineOff())
	}
	if err := check(out); err != nil {
		return nil, fmt.Errorf("lab %s: cni.cilium.values: %w", l.Metadata.Name, err)
	}
	return out, nil
}

// ValuesYAML is Values as a values.yaml: map keys sorted, so the same lab
// gives the same bytes every time.
func ValuesYAML(l *labfile.Lab, f templates.Facts) ([]byte, error) {
	v, err := Values(l, f)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Cilium %s values for lab %s, rendered by lab from the lab file.\n",
		l.CNI.Cilium.Version, l.Metadata.Name)
	if l.Kubernetes.Artifacts == labfile.ArtifactsBuild {
		b.WriteString("# Offline (kubernetes.artifacts: build): the images lab built, never pulled;\n" +
			"# what needs another image (Envoy, Hubble UI, certgen, ...) is off.\n")
	}
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("lab %s: cilium values: %w", l.Metadata.Name, err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("lab %s: cilium values: %w", l.Metadata.Name, err)
	}
	return b.Bytes(), nil
}

// builtImages points the chart at the images lab built for an offline lab
// (kubernetes.artifacts: build) and containerd holds on every node: by
// their full reference, as override (so that neither the repository, the
// tag nor the digest of the chart's defaults is used), and never pulled, as
// the nodes reach no registry. The user's values may still replace them.
func builtImages(v map[string]any, refs artifacts.CiliumImages) {
	image := func(ref string) map[string]any {
		return map[string]any{"override": ref, "pullPolicy": "Never", "useDigest": false}
	}
	v["image"] = image(refs.Agent)
	v["operator"].(map[string]any)["image"] = image(refs.Operator)
	v["hubble"] = map[string]any{"relay": map[string]any{"image": image(refs.Relay)}}
}

// offlineOff are the values an offline lab forces (see
// labfile.CiliumOfflineValues): everything in the chart that would run an
// image lab does not build.
func offlineOff() map[string]any {
	out := map[string]any{}
	for _, o := range labfile.CiliumOfflineValues() {
		m := out
		keys := strings.Split(o.Path, ".")
		for _, k := range keys[:len(keys)-1] {
			sub, ok := m[k].(map[string]any)
			if !ok {
				sub = map[string]any{}
				m[k] = sub
			}
			m = sub
		}
		m[keys[len(keys)-1]] = o.Off
	}
	return out
}

// sharedL2 reports whether every Kubernetes node sits on the node network
// itself, so that any node can reach any other without a router. A node
// that only has addresses on other networks (the study's k8s-w0 on
// 192.168.20.0/24 behind the router VM) is reached through a gateway.
func sharedL2(l *labfile.Lab, nodes []*labfile.Node) bool {
	nw := l.NodeNetworkDef()
	if nw == nil {
		return false
	}
	for _, n := range nodes {
		a := l.NodeIP(n)
		if !a.IsValid() || !nw.Prefix().Contains(a) {
			return false
		}
	}
	return true
}

// check rejects merged values that the chart renders but the agents would
// refuse later on the nodes, with a message that says what to change.
func check(v map[string]any) error {
	// cilium-agent exits at start-up on this pair (daemon/cmd's option
	// validation, Cilium 1.17 and 1.18).
	if v["routingMode"] == RoutingTunnel && labfile.ChartBool(v["autoDirectNodeRoutes"]) {
		return fmt.Errorf("autoDirectNodeRoutes: true cannot be used with routingMode: tunnel; drop one of them")
	}
	return nil
}
