package labfile

import (
	"fmt"
	"math"
	"net/netip"
	"net/url"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/version"
)

// minKubernetesVersion is the oldest release lab builds. kubeadm reads
// v1beta4 from 1.31, but lab checks its configs with kubeadm 1.34's own
// validation, which refuses control planes more than one minor older.
var minKubernetesVersion = version.MustParseSemantic("v1.33.0")

// vboxHostOnly is the range VirtualBox 6.1.28+ allows for host-only networks
// unless /etc/vbox/networks.conf says otherwise.
var vboxHostOnly = netip.MustParsePrefix("192.168.56.0/21")

// validator collects every problem at once: a user fixing a lab file wants
// the whole list, not one error per run.
type validator struct {
	lab *Lab
	// file is the lab file's name, to find what it names relative to
	// it before Load has set lab.Path.
	file  string
	probs Problems
}

func (v *validator) errorf(path, hint, format string, args ...any) {
	v.probs = append(v.probs, Problem{Path: path, Message: fmt.Sprintf(format, args...), Hint: hint})
}

func (v *validator) warnf(path, hint, format string, args ...any) {
	v.probs = append(v.probs, Problem{Path: path, Message: fmt.Sprintf(format, args...), Hint: hint, Severity: Warning})
}

// Validate checks a defaulted lab and returns every problem found; positions
// are not filled in (Load does that).
func Validate(l *Lab) Problems { return validate(l, l.Path) }

func validate(l *Lab, file string) Problems {
	v := &validator{lab: l, file: file}
	v.header()
	v.provider()
	v.networks()
	v.nodes()
	v.routing()
	v.kubernetes()
	v.controlPlane()
	v.cni()
	v.bgp()
	v.addons()
	v.ssh()
	return v.probs
}

func (v *validator) header() {
	l := v.lab
	if l.APIVersion != APIVersion {
		v.errorf("apiVersion", "set apiVersion: "+APIVersion, "unsupported apiVersion %q", l.APIVersion)
	}
	if l.Kind != Kind {
		v.errorf("kind", "set kind: "+Kind, "unsupported kind %q", l.Kind)
	}
	switch {
	case l.Metadata.Name == "":
		v.errorf("metadata.name", "name the lab, e.g. metadata.name: cilium-lab", "missing")
	case len(validation.IsDNS1123Label(l.Metadata.Name)) > 0:
		v.errorf("metadata.name", "use lower-case letters, digits and '-', at most 63 characters", "%q is not a valid lab name", l.Metadata.Name)
	}
}

func (v *validator) provider() {
	p := v.lab.Provider
	if !slices.Contains(ProviderTypes(), p.Type) {
		v.errorf("provider.type", "use vagrant, docker or static", "unknown provider %q", p.Type)
	}
	if p.Vagrant != nil && p.Type != ProviderVagrant {
		v.errorf("provider.vagrant", "remove it or set provider.type: vagrant", "vagrant settings given but provider.type is %s", p.Type)
	}
	if p.Docker != nil && p.Type != ProviderDocker {
		v.errorf("provider.docker", "remove it or set provider.type: docker", "docker settings given but provider.type is %s", p.Type)
	}
	if p.Type == ProviderVagrant && p.Vagrant != nil {
		if p.Vagrant.CPUs < 1 {
			v.errorf("provider.vagrant.cpus", "", "must be at least 1")
		}
		if p.Vagrant.Memory < 256 {
			v.errorf("provider.vagrant.memory", "memory is in MiB", "must be at least 256")
		}
	}
}

func (v *validator) networks() {
	l := v.lab
	if len(l.Networks) == 0 {
		v.errorf("networks", "add one, e.g. networks: [{name: lab, cidr: 192.168.10.0/24}]", "a lab needs at least one node network")
	}
	names := map[string]int{}
	for i, n := range l.Networks {
		path := fmt.Sprintf("networks[%d]", i)
		switch {
		case n.Name == "":
			v.errorf(path+".name", "", "missing")
		case len(validation.IsDNS1123Label(n.Name)) > 0:
			v.errorf(path+".name", "use lower-case letters, digits and '-'", "%q is not a valid network name", n.Name)
		}
		if j, dup := names[n.Name]; dup && n.Name != "" {
			v.errorf(path+".name", "give every network its own name", "%q is also networks[%d]'s name", n.Name, j)
		}
		names[n.Name] = i
		p, err := netip.ParsePrefix(n.CIDR)
		if err != nil || !p.Addr().Is4() {
			v.errorf(path+".cidr", "write an IPv4 prefix such as 192.168.10.0/24", "%q is not an IPv4 CIDR", n.CIDR)
			continue
		}
		if p.Masked() != p {
			v.errorf(path+".cidr", fmt.Sprintf("write %s", p.Masked()), "%s has host bits set", n.CIDR)
		}
		if p.Bits() > 30 {
			v.errorf(path+".cidr", "use /30 or larger", "%s is too small for a node network", n.CIDR)
		}
		for j := 0; j < i; j++ {
			if q := l.Networks[j].Prefix(); q.IsValid() && q.Overlaps(p) {
				v.errorf(path+".cidr", "node networks must not overlap", "%s overlaps networks[%d] (%s)", n.CIDR, j, l.Networks[j].CIDR)
			}
		}
		if n.Gateway != "" {
			if a, err := netip.ParseAddr(n.Gateway); err != nil || !p.Contains(a) {
				v.errorf(path+".gateway", "", "%q is not an address inside %s", n.Gateway, n.CIDR)
			}
		}
		if l.Provider.Type == ProviderVagrant && !vboxHostOnly.Overlaps(p) {
			v.warnf(path+".cidr", "add '* "+p.String()+"' to /etc/vbox/networks.conf on the host, or use 192.168.56.0/21",
				"VirtualBox 6.1.28+ refuses host-only networks outside 192.168.56.0/21")
		}
	}
	if l.Kubernetes.NodeNetwork != "" && l.Network(l.Kubernetes.NodeNetwork) == nil {
		v.errorf("kubernetes.nodeNetwork", "name one of the lab's networks", "no network called %q", l.Kubernetes.NodeNetwork)
	}
}

var knownRoles = []string{RoleControlPlane, RoleWorker, RoleLoadBalancer, RoleRouter, RoleClient}

func (v *validator) nodes() {
	l := v.lab
	if len(l.Nodes) == 0 {
		v.errorf("nodes", "add at least one node with roles: [control-plane]", "a lab needs nodes")
		return
	}
	names := map[string]int{}
	owners := map[netip.Addr]int{}
	for i := range l.Nodes {
		n := &l.Nodes[i]
		path := fmt.Sprintf("nodes[%d]", i)
		switch {
		case n.Name == "":
			v.errorf(path+".name", "", "missing")
		case len(validation.IsDNS1123Subdomain(n.Name)) > 0 || len(n.Name) > 63:
			v.errorf(path+".name", "Kubernetes node names are lower-case letters, digits, '-' and '.', at most 63 characters, starting and ending with a letter or digit",
				"%q is not a valid node name", n.Name)
		}
		if j, dup := names[n.Name]; dup && n.Name != "" {
			v.errorf(path+".name", "give every node its own name", "%q is also nodes[%d]'s name", n.Name, j)
		} else {
			names[n.Name] = i
		}
		v.roles(n, path)
		v.addresses(n, path, owners)
		for k, val := range n.Labels {
			if errs := validation.IsQualifiedName(k); len(errs) > 0 {
				v.errorf(path+".labels."+k, "", "invalid label key: %s", strings.Join(errs, "; "))
			} else if restrictedLabel(k) {
				v.errorf(path+".labels."+k, "use your own prefix (example.com/role), or node.kubernetes.io/...",
					"the kubelet may not set labels under %s on its own node", k[:strings.Index(k, "/")])
			}
			if errs := validation.IsValidLabelValue(val); len(errs) > 0 {
				v.errorf(path+".labels."+k, "", "invalid label value %q: %s", val, strings.Join(errs, "; "))
			}
		}
		for j, t := range n.Taints {
			tp := fmt.Sprintf("%s.taints[%d]", path, j)
			if errs := validation.IsQualifiedName(t.Key); len(errs) > 0 {
				v.errorf(tp+".key", "", "invalid taint key %q", t.Key)
			}
			switch t.Effect {
			case "NoSchedule", "PreferNoSchedule", "NoExecute":
			default:
				v.errorf(tp+".effect", "use NoSchedule, PreferNoSchedule or NoExecute", "unknown taint effect %q", t.Effect)
			}
		}
		if l.Provider.Type == ProviderVagrant {
			if n.HasRole(RoleControlPlane) && n.CPUs < 2 {
				v.warnf(path+".cpus", "give control planes 2 CPUs", "kubeadm's preflight refuses a control plane with %d CPU", n.CPUs)
			}
			if n.HasRole(RoleControlPlane) && n.Memory < 1700 {
				v.warnf(path+".memory", "give control planes at least 2048 MiB", "kubeadm's preflight wants 1700 MiB on a control plane, not %d", n.Memory)
			}
		} else if n.CPUs != 0 || n.Memory != 0 {
			v.warnf(path, "they only size VirtualBox VMs", "cpus/memory are ignored by the %s provider", l.Provider.Type)
		}
	}
	cps := l.ControlPlanes()
	switch {
	case len(cps) == 0:
		v.errorf("nodes", "give one node (three for HA) roles: [control-plane]", "no control-plane node")
	case len(cps)%2 == 0:
		v.warnf(fmt.Sprintf("nodes[%d].roles", indexOf(l, cps[len(cps)-1])), "use 1, 3 or 5 control planes",
			"%d control planes: etcd needs a majority, so an even count tolerates no more failures than %d", len(cps), len(cps)-1)
	}
}

func indexOf(l *Lab, n *Node) int {
	for i := range l.Nodes {
		if &l.Nodes[i] == n {
			return i
		}
	}
	return -1
}

func (v *validator) roles(n *Node, path string) {
	if len(n.Roles) == 0 {
		v.errorf(path+".roles", "use some of: "+strings.Join(knownRoles, ", "), "a node needs at least one role")
	}
	seen := map[string]bool{}
	for j, r := range n.Roles {
		rp := fmt.Sprintf("%s.roles[%d]", path, j)
		known := false
		for _, k := range knownRoles {
			known = known || r == k
		}
		if !known {
			v.errorf(rp, "use one of: "+strings.Join(knownRoles, ", "), "unknown role %q", r)
		}
		if seen[r] {
			v.errorf(rp, "", "role %q given twice", r)
		}
		seen[r] = true
	}
	if n.HasRole(RoleLoadBalancer) {
		if n.HasRole(RoleControlPlane) || n.HasRole(RoleWorker) {
			v.errorf(path+".roles", "drop loadbalancer: without dedicated loadbalancer nodes the control planes carry the VIP themselves",
				"a loadbalancer node cannot also be a Kubernetes node")
		}
		if v.lab.ControlPlane.Mode != EndpointVIP {
			v.errorf(path+".roles", "set controlPlane.mode: vip, or drop the role", "loadbalancer nodes need controlPlane.mode vip, not %s", v.lab.ControlPlane.Mode)
		}
	}
}

func (v *validator) addresses(n *Node, path string, owners map[netip.Addr]int) {
	l := v.lab
	if len(n.Addresses) == 0 {
		v.errorf(path+".addresses", fmt.Sprintf("add addresses: {%s: <ip>}", l.Kubernetes.NodeNetwork), "a node needs an address")
		return
	}
	nets := make([]string, 0, len(n.Addresses))
	for k := range n.Addresses {
		nets = append(nets, k)
	}
	sort.Strings(nets)
	for _, net := range nets {
		ap := path + ".addresses." + net
		raw := n.Addresses[net]
		nw := l.Network(net)
		if nw == nil {
			v.errorf(ap, "declare it under networks, or use one of: "+networkNames(l), "no network called %q", net)
			continue
		}
		a, err := netip.ParseAddr(raw)
		if err != nil || !a.Is4() {
			v.errorf(ap, "", "%q is not an IPv4 address", raw)
			continue
		}
		p := nw.Prefix()
		if !p.IsValid() {
			continue
		}
		if !p.Contains(a) {
			v.errorf(ap, "", "%s is outside network %s (%s)", a, net, p)
			continue
		}
		if a == p.Addr() || a == lastAddr(p) {
			v.errorf(ap, "", "%s is the network or broadcast address of %s", a, p)
		}
		if nw.Gateway == a.String() && !n.HasRole(RoleRouter) {
			v.errorf(ap, "", "%s is network %s's gateway", a, net)
		}
		if j, dup := owners[a]; dup {
			v.errorf(ap, "give every node its own address", "%s is also nodes[%d] (%s)'s address", a, j, l.Nodes[j].Name)
		} else {
			owners[a] = indexOf(l, n)
		}
	}
	// Workers may sit in another network behind a router (routing
	// checks that one connects them); the rest carry etcd, the API and
	// VRRP on the node network itself.
	if _, ok := n.Addresses[l.Kubernetes.NodeNetwork]; !ok && l.Kubernetes.NodeNetwork != "" &&
		(n.HasRole(RoleControlPlane) || n.HasRole(RoleLoadBalancer)) {
		v.errorf(path+".addresses", fmt.Sprintf("add %s: <ip>", l.Kubernetes.NodeNetwork),
			"no address on the node network %q, which carries Kubernetes and VRRP traffic", l.Kubernetes.NodeNetwork)
	}
}

func networkNames(l *Lab) string {
	var names []string
	for _, n := range l.Networks {
		names = append(names, n.Name)
	}
	return strings.Join(names, ", ")
}

func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	u := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3]) | host
	return netip.AddrFrom4([4]byte{byte(u >> 24), byte(u >> 16), byte(u >> 8), byte(u)})
}

func (v *validator) kubernetes() {
	l := v.lab
	k := l.Kubernetes
	if ver, err := version.ParseSemantic(k.Version); err != nil {
		v.errorf("kubernetes.version", "write a release such as v1.34.12", "%q is not a Kubernetes version", k.Version)
	} else if ver.LessThan(minKubernetesVersion) {
		v.errorf("kubernetes.version", "use v1.33.0 or newer", "%s is older than 1.33: kubeadm v1beta4 configs need 1.31+, and lab checks them with kubeadm 1.34, which supports 1.33+", k.Version)
	}
	pod := v.subnet("kubernetes.podSubnet", k.PodSubnet)
	svc := v.subnet("kubernetes.serviceSubnet", k.ServiceSubnet)
	if pod.IsValid() && pod.Bits() > 24 {
		v.errorf("kubernetes.podSubnet", "use /24 or larger: every node gets a /24 from it", "%s is too small", pod)
	}
	if svc.IsValid() && svc.Bits() < 12 {
		v.errorf("kubernetes.serviceSubnet", "use /12 or smaller", "%s is larger than kube-apiserver allows", svc)
	}
	if pod.IsValid() && svc.IsValid() && pod.Overlaps(svc) {
		v.errorf("kubernetes.serviceSubnet", "pick ranges that do not overlap, e.g. pods 10.244.0.0/16 and services 10.96.0.0/16",
			"%s overlaps podSubnet %s", svc, pod)
	}
	for i, n := range l.Networks {
		np := n.Prefix()
		if !np.IsValid() {
			continue
		}
		if pod.IsValid() && pod.Overlaps(np) {
			v.errorf("kubernetes.podSubnet", "pods and nodes need separate ranges", "%s overlaps node network %s (%s)", pod, n.Name, np)
		}
		if svc.IsValid() && svc.Overlaps(np) {
			v.errorf("kubernetes.serviceSubnet", "services and nodes need separate ranges", "%s overlaps node network %s (%s)", svc, n.Name, np)
		}
		_ = i
	}
	if errs := validation.IsDNS1123Subdomain(k.DNSDomain); len(errs) > 0 {
		v.errorf("kubernetes.dnsDomain", "e.g. cluster.local", "%q is not a DNS domain", k.DNSDomain)
	}
	switch k.Artifacts {
	case ArtifactsPackages, ArtifactsBuild, ArtifactsRelease:
	default:
		v.errorf("kubernetes.artifacts", "use packages, release or build", "unknown artifact source %q", k.Artifacts)
	}
	if r := k.Release; r != nil {
		if k.Artifacts != ArtifactsRelease {
			v.warnf("kubernetes.release", "set kubernetes.artifacts: release, or remove kubernetes.release",
				"is ignored: the artifact source is %s", k.Artifacts)
		}
		v.downloadURL("kubernetes.release.url", r.URL)
		v.downloadURL("kubernetes.release.cniPluginsURL", r.CNIPluginsURL)
	}
	if !strings.HasPrefix(k.CRISocket, "unix://") {
		v.errorf("kubernetes.criSocket", "e.g. "+DefaultCRISocket, "%q is not a unix:// endpoint", k.CRISocket)
	}
	targets := []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubeletconfiguration", "corednsdeployment"}
	for i, p := range k.Patches {
		pp := fmt.Sprintf("kubernetes.patches[%d]", i)
		if !contains(targets, p.Target) {
			v.errorf(pp+".target", "use one of: "+strings.Join(targets, ", "), "unknown patch target %q", p.Target)
		}
		if !contains([]string{"strategic", "merge", "json"}, p.Type) {
			v.errorf(pp+".type", "use strategic, merge or json", "unknown patch type %q", p.Type)
		}
		var body any
		if err := yaml.Unmarshal([]byte(p.Patch), &body); err != nil || body == nil {
			v.errorf(pp+".patch", "write the patch as a YAML block (patch: |)", "not a YAML document")
		} else if _, isList := body.([]any); isList != (p.Type == "json") {
			v.errorf(pp+".patch", "a json patch is a list of operations; strategic and merge patches are mappings", "wrong shape for a %s patch", p.Type)
		}
	}
}

// downloadURL checks a download site's base URL: http(s) or file, and no
// query, which would end up in the middle of every path built on it.
func (v *validator) downloadURL(path, s string) {
	if s == "" {
		return
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		v.errorf(path, "write a URL such as https://mirror.example/kubernetes/release", "%q is not a URL: %v", s, err)
	case u.Scheme != "https" && u.Scheme != "http" && u.Scheme != "file":
		v.errorf(path, "write a URL such as https://mirror.example/kubernetes/release", "%q is not an http(s) or file URL", s)
	case u.RawQuery != "" || u.Fragment != "":
		v.errorf(path, "lab adds <version>/... to the URL and checks each file against the .sha256 beside it", "%q has a query or fragment", s)
	}
}

func (v *validator) subnet(path, s string) netip.Prefix {
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is4() {
		v.errorf(path, "write an IPv4 prefix such as 10.244.0.0/16", "%q is not an IPv4 CIDR", s)
		return netip.Prefix{}
	}
	if p.Masked() != p {
		v.errorf(path, fmt.Sprintf("write %s", p.Masked()), "%s has host bits set", s)
	}
	return p
}

func (v *validator) controlPlane() {
	l := v.lab
	cp := l.ControlPlane
	cps := l.ControlPlanes()
	for _, port := range []struct {
		path string
		val  int
	}{{"controlPlane.apiPort", cp.APIPort}, {"controlPlane.lbPort", cp.LBPort}} {
		if port.val < 1 || port.val > 65535 {
			v.errorf(port.path, "", "%d is not a TCP port", port.val)
		}
	}
	switch cp.Mode {
	case EndpointVIP:
		v.vip()
		if len(cps) == 1 {
			v.warnf("controlPlane.mode", "add control planes (3 for HA) or use mode: single",
				"vip mode with one control plane: the VIP moves but the API behind it does not")
		}
		if !l.DedicatedLoadBalancers() && cp.LBPort == cp.APIPort {
			v.errorf("controlPlane.lbPort", fmt.Sprintf("use %d: HAProxy shares the control-plane nodes with kube-apiserver", DefaultSharedLBPort),
				"HAProxy and kube-apiserver would both bind port %d", cp.APIPort)
		}
		r := cp.VRRP
		if r.RouterID < 1 || r.RouterID > 255 {
			v.errorf("controlPlane.vrrp.routerID", "", "%d is not a VRRP router id (1-255)", r.RouterID)
		}
		if r.AdvertInterval < 0.01 || r.AdvertInterval > 40.95 {
			v.errorf("controlPlane.vrrp.advertInterval", "VRRPv3 allows 0.01 to 40.95 seconds", "%g is out of range", r.AdvertInterval)
		} else if c := r.AdvertInterval * 100; math.Abs(c-math.Round(c)) > 1e-6 {
			v.errorf("controlPlane.vrrp.advertInterval", "VRRPv3 counts in hundredths of a second", "%g has more than two decimals", r.AdvertInterval)
		}
		if r.Preempt && r.AdvertInterval < 0.3 {
			v.warnf("controlPlane.vrrp.preempt", "leave preempt off", "with preempt the VIP moves back when the old holder returns: a second, needless outage")
		}
	case EndpointExternal:
		if cp.Address == "" {
			v.errorf("controlPlane.address", "give the load balancer's host name or IP", "external mode needs an address")
		} else if len(validation.IsDNS1123Subdomain(cp.Address)) > 0 {
			if _, err := netip.ParseAddr(cp.Address); err != nil {
				v.errorf("controlPlane.address", "", "%q is neither an IP address nor a host name", cp.Address)
			}
		}
		if cp.VIP != "" {
			v.errorf("controlPlane.vip", "remove it, or use mode: vip", "a VIP is only used in vip mode")
		}
	case EndpointSingle:
		if cp.VIP != "" {
			v.errorf("controlPlane.vip", "remove it, or use mode: vip", "a VIP is only used in vip mode")
		}
		if len(cps) > 1 {
			v.warnf("controlPlane.mode", "use mode: vip", "single mode with %d control planes: every client depends on %s alone", len(cps), cps[0].Name)
		}
	default:
		v.errorf("controlPlane.mode", "use vip, external or single", "unknown mode %q", cp.Mode)
	}
}

func (v *validator) vip() {
	l := v.lab
	cp := l.ControlPlane
	if cp.VIP == "" {
		v.errorf("controlPlane.vip", "pick a free address on the node network, e.g. the .10 of it", "vip mode needs a VIP")
		return
	}
	vip, err := netip.ParseAddr(cp.VIP)
	if err != nil || !vip.Is4() {
		v.errorf("controlPlane.vip", "", "%q is not an IPv4 address", cp.VIP)
		return
	}
	for i, n := range l.Nodes {
		for net, a := range n.Addresses {
			if a == vip.String() {
				v.errorf("controlPlane.vip", "pick an address no node uses", "%s is nodes[%d] (%s)'s address on %s", vip, i, n.Name, net)
			}
		}
	}
	nw := l.NodeNetworkDef()
	if nw == nil || !nw.Prefix().IsValid() {
		return
	}
	if !nw.Prefix().Contains(vip) {
		v.errorf("controlPlane.vip", fmt.Sprintf("pick a free address inside %s", nw.Prefix()),
			"%s is outside %s (%s), the network of the nodes that hold it", vip, nw.Name, nw.Prefix())
	} else if vip == nw.Prefix().Addr() || vip == lastAddr(nw.Prefix()) {
		v.errorf("controlPlane.vip", "", "%s is the network or broadcast address", vip)
	}
	if nw.Gateway == vip.String() {
		v.errorf("controlPlane.vip", "", "%s is the gateway of %s", vip, nw.Name)
	}
}

func (v *validator) cni() {
	l := v.lab
	switch l.CNI.Type {
	case CNIBuiltin:
		if !l.Kubernetes.KubeProxyEnabled() {
			v.errorf("kubernetes.kubeProxy", "set kubeProxy: true, or use cni type cilium, which replaces it",
				"the builtin datapath leaves Services to kube-proxy")
		}
	case CNICilium:
		if _, err := version.ParseSemantic(l.CNI.Cilium.Version); err != nil {
			v.errorf("cni.cilium.version", "write a release such as 1.18.4", "%q is not a Cilium version", l.CNI.Cilium.Version)
		}
	case CNINone:
	default:
		v.errorf("cni.type", "use builtin, cilium or none", "unknown CNI %q", l.CNI.Type)
	}
	if l.CNI.Cilium != nil && l.CNI.Type != CNICilium {
		v.errorf("cni.cilium", "remove it, or set cni.type: cilium", "cilium settings given but cni.type is %s", l.CNI.Type)
	}
	v.ciliumOffline()
}

func (v *validator) ssh() {
	l := v.lab
	s := l.SSH
	if s.Port < 1 || s.Port > 65535 {
		v.errorf("ssh.port", "", "%d is not a TCP port", s.Port)
	}
	switch s.KnownHosts {
	case KnownHostsAcceptNew, KnownHostsStrict:
	case KnownHostsPinned:
		if l.Provider.Type != ProviderDocker {
			v.errorf("ssh.knownHosts", "use accept-new (trust on first use) or strict", "the %s provider cannot read host keys out of band", l.Provider.Type)
		}
	default:
		v.errorf("ssh.knownHosts", "use accept-new, strict or pinned", "unknown host-key policy %q", s.KnownHosts)
	}
	for i, k := range s.KeyFiles {
		if strings.TrimSpace(k) == "" {
			v.errorf(fmt.Sprintf("ssh.keyFiles[%d]", i), "", "empty key file name")
		}
	}
	if l.Provider.Type == ProviderStatic && len(s.KeyFiles) == 0 && !s.AgentEnabled() {
		v.errorf("ssh", "list ssh.keyFiles or turn the agent back on", "no way to authenticate: no key files and the ssh-agent is off")
	}
	for i, b := range s.Bastions {
		bp := fmt.Sprintf("ssh.bastions[%d]", i)
		if b.Host == "" {
			v.errorf(bp+".host", "", "missing")
		}
		if b.Port < 1 || b.Port > 65535 {
			v.errorf(bp+".port", "", "%d is not a TCP port", b.Port)
		}
	}
	for i, n := range l.Nodes {
		if n.SSH != nil && n.SSH.Port != 0 && (n.SSH.Port < 1 || n.SSH.Port > 65535) {
			v.errorf(fmt.Sprintf("nodes[%d].ssh.port", i), "", "%d is not a TCP port", n.SSH.Port)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// restrictedLabel reports whether the kubelet refuses to set key on its own
// node (NodeRestriction): keys under kubernetes.io and k8s.io, except the
// node.kubernetes.io and kubelet.kubernetes.io prefixes and the well-known
// topology labels.
func restrictedLabel(key string) bool {
	ns, _, ok := strings.Cut(key, "/")
	if !ok {
		return false
	}
	if ns != "kubernetes.io" && ns != "k8s.io" && !strings.HasSuffix(ns, ".kubernetes.io") && !strings.HasSuffix(ns, ".k8s.io") {
		return false
	}
	switch {
	case ns == "node.kubernetes.io", ns == "kubelet.kubernetes.io",
		strings.HasSuffix(ns, ".node.kubernetes.io"), strings.HasSuffix(ns, ".kubelet.kubernetes.io"):
		return false
	}
	switch key {
	case "kubernetes.io/hostname", "kubernetes.io/os", "kubernetes.io/arch",
		"topology.kubernetes.io/region", "topology.kubernetes.io/zone",
		"failure-domain.beta.kubernetes.io/region", "failure-domain.beta.kubernetes.io/zone",
		"beta.kubernetes.io/instance-type", "node.kubernetes.io/instance-type":
		return false
	}
	return true
}
