package labfile

import (
	"fmt"
	"net/netip"
	"regexp"
)

// RouterConfig is what a router node does besides forwarding between the
// lab networks it has addresses on.
type RouterConfig struct {
	// Interfaces are networks that exist only on this router, as dummy
	// interfaces: the study's loop1 10.10.1.200/24 and loop2
	// 10.10.2.200/24 stand for networks behind the router. Every other
	// node is given a route to them via the router.
	Interfaces []RouterInterface `yaml:"interfaces,omitempty"`
	// PodRoutes routes every Kubernetes node's pod CIDR via that node on
	// the router, and the pod range via the router on every node, so pods
	// on nodes in different networks reach each other with native routing
	// and no BGP (what the study does by hand in its router week).
	PodRoutes bool `yaml:"podRoutes,omitempty"`
}

// RouterInterface is one dummy interface of a router.
type RouterInterface struct {
	// Name is the interface name on the router, e.g. loop1.
	Name string `yaml:"name"`
	// Address is the router's address with the network's prefix length,
	// e.g. 10.10.1.200/24.
	Address string `yaml:"address"`
}

// Prefix is the interface's address with its prefix length; invalid when
// Address does not parse (validation has said so).
func (i RouterInterface) Prefix() netip.Prefix {
	p, _ := netip.ParsePrefix(i.Address)
	return p
}

// Routers returns the nodes with the router role, in file order.
func (l *Lab) Routers() []*Node { return l.withRole(RoleRouter) }

// NodeNetworkOf names the network that carries node n's Kubernetes
// traffic: the node network when n has an address there, else the first
// lab network it has one on (a worker in a second subnet behind a router).
func (l *Lab) NodeNetworkOf(n *Node) string {
	if _, ok := n.Addresses[l.Kubernetes.NodeNetwork]; ok {
		return l.Kubernetes.NodeNetwork
	}
	for _, nw := range l.Networks {
		if _, ok := n.Addresses[nw.Name]; ok {
			return nw.Name
		}
	}
	return ""
}

// PodRange is the range pod addresses come from: Cilium's cluster pool
// when its values choose one, else kubernetes.podSubnet. Invalid when
// neither parses.
func (l *Lab) PodRange() netip.Prefix {
	if l.CNI.Type == CNICilium {
		if mode, _ := l.CNI.Cilium.Value("ipam.mode"); mode == "cluster-pool" {
			if list, ok := l.CNI.Cilium.Value("ipam.operator.clusterPoolIPv4PodCIDRList"); ok {
				if first := firstString(list); first != "" {
					if p, err := netip.ParsePrefix(first); err == nil {
						return p.Masked()
					}
				}
			}
		}
	}
	p, _ := netip.ParsePrefix(l.Kubernetes.PodSubnet)
	return p.Masked()
}

func firstString(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case []any:
		if len(t) > 0 {
			s, _ := t[0].(string)
			return s
		}
	case []string:
		if len(t) > 0 {
			return t[0]
		}
	}
	return ""
}

// linkName is what Linux accepts as an interface name (IFNAMSIZ - 1).
var linkName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,15}$`)

// routing checks the routers' own settings and that every node can reach
// the node network, directly or through one router.
func (v *validator) routing() {
	l := v.lab
	taken := map[netip.Prefix]string{}
	for _, nw := range l.Networks {
		if nw.Prefix().IsValid() {
			taken[nw.Prefix()] = "network " + nw.Name
		}
	}
	for i := range l.Nodes {
		n := &l.Nodes[i]
		path := fmt.Sprintf("nodes[%d]", i)
		if n.HasRole(RoleRouter) && (n.HasRole(RoleControlPlane) || n.HasRole(RoleWorker) || n.HasRole(RoleLoadBalancer)) {
			v.errorf(path+".roles", "give routing its own node (the study's router VM)",
				"a router runs no Kubernetes and holds no VIP: it cannot also be a %s", kubeRole(n))
		}
		if n.HasRole(RoleClient) && (n.HasRole(RoleControlPlane) || n.HasRole(RoleWorker) || n.HasRole(RoleLoadBalancer)) {
			v.errorf(path+".roles", "a client stands outside the cluster: give it its own node",
				"a client runs no Kubernetes and holds no VIP: it cannot also be a %s", kubeRole(n))
		}
		if n.Router == nil {
			continue
		}
		if !n.HasRole(RoleRouter) {
			v.errorf(path+".router", "add router to its roles, or remove the router section", "router settings on a node without the router role")
			continue
		}
		names := map[string]int{}
		for j, itf := range n.Router.Interfaces {
			ip := fmt.Sprintf("%s.router.interfaces[%d]", path, j)
			if !linkName.MatchString(itf.Name) {
				v.errorf(ip+".name", "use up to 15 letters, digits, '.', '-' or '_', e.g. loop1", "%q is not an interface name", itf.Name)
			} else if k, dup := names[itf.Name]; dup {
				v.errorf(ip+".name", "give every interface its own name", "%q is also interfaces[%d]'s name", itf.Name, k)
			}
			names[itf.Name] = j
			p, err := netip.ParsePrefix(itf.Address)
			if err != nil || !p.Addr().Is4() {
				v.errorf(ip+".address", "write the router's address with the network's length, e.g. 10.10.1.200/24", "%q is not an IPv4 address with a prefix length", itf.Address)
				continue
			}
			if p.Addr() == p.Masked().Addr() || p.Bits() > 30 {
				v.errorf(ip+".address", "write the router's address with the network's length, e.g. 10.10.1.200/24", "%s is not a host address in a network of at least four addresses", itf.Address)
				continue
			}
			for q, owner := range taken {
				if q.Overlaps(p.Masked()) {
					v.errorf(ip+".address", "networks behind a router must not overlap the lab's networks or each other", "%s overlaps %s (%s)", p.Masked(), owner, q)
				}
			}
			for _, sub := range []struct{ name, cidr string }{{"kubernetes.podSubnet", l.Kubernetes.PodSubnet}, {"kubernetes.serviceSubnet", l.Kubernetes.ServiceSubnet}} {
				if q, err := netip.ParsePrefix(sub.cidr); err == nil && q.Overlaps(p) {
					v.errorf(ip+".address", "pick a range outside the cluster's", "%s overlaps %s (%s)", p.Masked(), sub.name, q)
				}
			}
			taken[p.Masked()] = fmt.Sprintf("%s's interface %s", n.Name, itf.Name)
		}
	}
	// A node off the node network reaches the control planes through a
	// router that is on both its network and the node network.
	for i := range l.Nodes {
		n := &l.Nodes[i]
		nn := l.NodeNetworkOf(n)
		if nn == "" || nn == l.Kubernetes.NodeNetwork || !n.InCluster() {
			continue
		}
		if n.HasRole(RoleControlPlane) {
			continue // addresses says it must be on the node network
		}
		if r := routerBetween(l, nn, l.Kubernetes.NodeNetwork); r == nil {
			v.errorf(fmt.Sprintf("nodes[%d].addresses", i), fmt.Sprintf("add %s: <ip>, or a router node with addresses on both %s and %s", l.Kubernetes.NodeNetwork, nn, l.Kubernetes.NodeNetwork),
				"%s is only on network %s, and no router connects it to the node network %s", n.Name, nn, l.Kubernetes.NodeNetwork)
		}
	}
}

// routerBetween returns the first router with addresses on both networks.
func routerBetween(l *Lab, a, b string) *Node {
	for _, r := range l.Routers() {
		_, onA := r.Addresses[a]
		_, onB := r.Addresses[b]
		if onA && onB {
			return r
		}
	}
	return nil
}

func kubeRole(n *Node) string {
	switch {
	case n.HasRole(RoleControlPlane):
		return RoleControlPlane
	case n.HasRole(RoleWorker):
		return RoleWorker
	}
	return RoleLoadBalancer
}
