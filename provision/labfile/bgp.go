package labfile

import (
	"fmt"
	"net/netip"
	"slices"
)

// BGP peers Kubernetes nodes with a router node that runs FRR: the nodes
// advertise their pod CIDRs and LoadBalancer addresses through Cilium's
// BGP control plane, the router announces networks behind it, and the
// router's kernel learns the routes to every pod (the study's week 5).
type BGP struct {
	// Router names the router node that runs FRR; default: the lab's only
	// router.
	Router string `yaml:"router,omitempty"`
	// ASN is the router's AS number (the study: 65000).
	ASN uint32 `yaml:"asn"`
	// NodeASN is the Kubernetes nodes' AS number. Default 65001; the same
	// as ASN makes the sessions iBGP.
	NodeASN uint32 `yaml:"nodeASN,omitempty"`
	// Nodes are the Kubernetes nodes that peer with the router; default:
	// every one.
	Nodes []string `yaml:"nodes,omitempty"`
	// Advertise is what the nodes advertise: podCIDR and
	// loadBalancerIP (the default: both).
	Advertise []string `yaml:"advertise,omitempty"`
	// Announce are networks the router announces to the nodes, each one
	// it is on (a lab network or one of its interfaces), e.g. 10.10.1.0/24.
	Announce []string `yaml:"announce,omitempty"`
}

// What Kubernetes nodes can advertise over BGP.
const (
	AdvertisePodCIDR        = "podCIDR"
	AdvertiseLoadBalancerIP = "loadBalancerIP"
)

// DefaultNodeASN is the Kubernetes nodes' AS number when bgp.nodeASN is
// left out.
const DefaultNodeASN = 65001

// defaultBGP fills bgp's defaults.
func defaultBGP(l *Lab) {
	b := l.BGP
	if b == nil {
		return
	}
	if b.Router == "" {
		if rs := l.Routers(); len(rs) == 1 {
			b.Router = rs[0].Name
		}
	}
	if b.NodeASN == 0 {
		b.NodeASN = DefaultNodeASN
	}
	if len(b.Nodes) == 0 {
		for _, n := range l.KubernetesNodes() {
			b.Nodes = append(b.Nodes, n.Name)
		}
	}
	if len(b.Advertise) == 0 {
		b.Advertise = []string{AdvertisePodCIDR, AdvertiseLoadBalancerIP}
	}
}

// BGPRouter is the node that runs FRR, or nil without bgp.
func (l *Lab) BGPRouter() *Node {
	if l.BGP == nil {
		return nil
	}
	return l.Node(l.BGP.Router)
}

// BGPPeers are the Kubernetes nodes that peer with the BGP router, in
// file order.
func (l *Lab) BGPPeers() []*Node {
	if l.BGP == nil {
		return nil
	}
	var out []*Node
	for _, n := range l.KubernetesNodes() {
		if slices.Contains(l.BGP.Nodes, n.Name) {
			out = append(out, n)
		}
	}
	return out
}

// Advertises reports whether the nodes advertise what (AdvertisePodCIDR,
// AdvertiseLoadBalancerIP).
func (b *BGP) Advertises(what string) bool { return b != nil && slices.Contains(b.Advertise, what) }

func (v *validator) bgp() {
	l := v.lab
	b := l.BGP
	if b == nil {
		return
	}
	if l.CNI.Type != CNICilium {
		v.errorf("bgp", "set cni.type: cilium, or remove bgp", "the nodes speak BGP through Cilium's BGP control plane, and cni.type is %s", l.CNI.Type)
	}
	r := l.Node(b.Router)
	switch {
	case b.Router == "" && len(l.Routers()) == 0:
		v.errorf("bgp", "add a node with roles: [router] that runs FRR", "BGP needs a router node, and the lab has none")
	case b.Router == "":
		v.errorf("bgp.router", "name the router that runs FRR", "the lab has %d routers", len(l.Routers()))
	case r == nil:
		v.errorf("bgp.router", "name a node of the lab", "no node called %q", b.Router)
	case !r.HasRole(RoleRouter):
		v.errorf("bgp.router", "give it roles: [router], or name a router", "%s is not a router", b.Router)
	case r.Router != nil && r.Router.PodRoutes:
		v.errorf(fmt.Sprintf("nodes[%d].router.podRoutes", indexOf(l, r)), "drop podRoutes: the router learns the pod CIDRs over BGP",
			"%s would route the pods twice, statically and over BGP", r.Name)
	}
	if b.ASN == 0 {
		v.errorf("bgp.asn", "the router's AS number, e.g. 65000 (64512-65534 are private)", "missing")
	}
	for i, name := range b.Nodes {
		n := l.Node(name)
		path := fmt.Sprintf("bgp.nodes[%d]", i)
		switch {
		case n == nil:
			v.errorf(path, "name a Kubernetes node of the lab", "no node called %q", name)
		case !n.InCluster():
			v.errorf(path, "only control planes and workers run Cilium's BGP control plane", "%s is no Kubernetes node", name)
		case r != nil && r.HasRole(RoleRouter):
			if _, ok := gatewayFor(l, n, r); !ok {
				v.errorf(path, fmt.Sprintf("give %s an address on a network %s is on", r.Name, name), "%s shares no network with the router %s", name, r.Name)
			}
		}
	}
	for i, a := range b.Advertise {
		if a != AdvertisePodCIDR && a != AdvertiseLoadBalancerIP {
			v.errorf(fmt.Sprintf("bgp.advertise[%d]", i), "use podCIDR or loadBalancerIP", "unknown advertisement %q", a)
		}
	}
	for i, a := range b.Announce {
		path := fmt.Sprintf("bgp.announce[%d]", i)
		p, err := netip.ParsePrefix(a)
		if err != nil || !p.Addr().Is4() || p.Masked() != p {
			v.errorf(path, "write a network such as 10.10.1.0/24", "%q is not an IPv4 network", a)
			continue
		}
		if r != nil && !routerOn(l, r, p) {
			v.errorf(path, "announce a lab network the router has an address on, or one of its interfaces", "%s is not a network of the router %s", a, r.Name)
		}
	}
}

// routerOn reports whether router r is on network p: an address in a lab
// network equal to p, or an interface in p.
func routerOn(l *Lab, r *Node, p netip.Prefix) bool {
	for _, nw := range l.Networks {
		if _, ok := r.Addresses[nw.Name]; ok && nw.Prefix().Masked() == p {
			return true
		}
	}
	if r.Router != nil {
		for _, itf := range r.Router.Interfaces {
			if itf.Prefix().Masked() == p {
				return true
			}
		}
	}
	return false
}

// gatewayFor is router rt's address on a network n is on: n's node network
// first, then the lab's networks in order.
func gatewayFor(l *Lab, n, rt *Node) (netip.Addr, bool) {
	nets := []string{l.NodeNetworkOf(n)}
	for _, nw := range l.Networks {
		nets = append(nets, nw.Name)
	}
	for _, name := range nets {
		if _, on := n.Addresses[name]; !on {
			continue
		}
		if a, err := netip.ParseAddr(rt.Addresses[name]); err == nil {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// AddressFacing is rt's address on a network n is on, the one n uses to
// reach rt (n's node network first): the next hop of n's routes via a
// router, and the BGP peer address of n's session with it.
func (l *Lab) AddressFacing(n, rt *Node) (netip.Addr, bool) { return gatewayFor(l, n, rt) }
