package templates

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/labctl/lab/provision/labfile"
)

// Paths of the routing files.
const (
	NetworkScriptPath = "/etc/lab/network.sh"
	NetworkUnitPath   = "/etc/systemd/system/lab-network.service"
	// PodRoutesPath holds a router's routes to each node's pod CIDR,
	// "CIDR VIA" per line: the pod-routes phase writes it once the
	// nodes have their CIDRs, and network.sh applies it with the rest.
	PodRoutesPath = "/etc/lab/pod-routes"
)

// Route is one static route a node gets.
type Route struct {
	To  netip.Prefix
	Via netip.Addr
}

// Dummy is one dummy interface of a router, a network behind it.
type Dummy struct {
	Name    string
	Address netip.Prefix
}

// Routing is what a node is given so that every lab network, every network
// behind a router and (with pod routes) every pod is reachable from it.
type Routing struct {
	// Forward turns IPv4 forwarding on (routers; Kubernetes nodes have
	// it from the os phase anyway).
	Forward bool
	Dummies []Dummy
	Routes  []Route
	// PodRoutes says the node is a router that carries the pods' routes
	// (labfile.RouterConfig.PodRoutes).
	PodRoutes bool
}

// Empty reports whether the node gets nothing: no files, no phase work.
func (r Routing) Empty() bool {
	return !r.Forward && len(r.Dummies) == 0 && len(r.Routes) == 0 && !r.PodRoutes
}

// RoutingFor decides node n's routing from the lab file: for every
// destination n is not on itself (another lab network, a network behind a
// router, and the pod range when a router carries pod routes), a route via
// the first router that is on that destination and on one of n's networks,
// using the router's address on n's node network when it has one. Labs
// without routers give every node nothing.
func RoutingFor(l *labfile.Lab, n *labfile.Node) Routing {
	var r Routing
	if n.HasRole(labfile.RoleRouter) {
		r.Forward = true
		if n.Router != nil {
			r.PodRoutes = n.Router.PodRoutes
			for _, itf := range n.Router.Interfaces {
				if p := itf.Prefix(); p.IsValid() {
					r.Dummies = append(r.Dummies, Dummy{Name: itf.Name, Address: p})
				}
			}
		}
	}
	routers := l.Routers()
	if len(routers) == 0 {
		return r
	}
	add := func(to netip.Prefix, attached func(*labfile.Node) bool) {
		for _, rt := range routers {
			if rt.Name == n.Name || !attached(rt) {
				continue
			}
			if via, ok := l.AddressFacing(n, rt); ok {
				r.Routes = append(r.Routes, Route{To: to, Via: via})
				return
			}
		}
	}
	for _, nw := range l.Networks {
		if _, on := n.Addresses[nw.Name]; on || !nw.Prefix().IsValid() {
			continue
		}
		add(nw.Prefix().Masked(), func(rt *labfile.Node) bool { _, ok := rt.Addresses[nw.Name]; return ok })
	}
	for _, rt := range routers {
		if rt.Router == nil || rt.Name == n.Name {
			continue
		}
		for _, itf := range rt.Router.Interfaces {
			if p := itf.Prefix(); p.IsValid() {
				add(p.Masked(), func(x *labfile.Node) bool { return x.Name == rt.Name })
			}
		}
	}
	if pods := l.PodRange(); n.InCluster() && pods.IsValid() {
		// The router knows every pod CIDR: from lab (podRoutes) or
		// from the nodes over BGP.
		add(pods, func(rt *labfile.Node) bool {
			return (rt.Router != nil && rt.Router.PodRoutes) || (l.BGP != nil && l.BGP.Router == rt.Name)
		})
	}
	return r
}

// NetworkFiles are network.sh and its unit on a node whose routing is not
// empty, and nothing elsewhere.
func NetworkFiles(l *labfile.Lab, n *labfile.Node) ([]File, error) {
	rt := RoutingFor(l, n)
	if rt.Empty() {
		return nil, nil
	}
	h := header(l, n)
	script, err := render(NetworkScriptPath, 0o755, struct {
		Routing
		Header        string
		PodRoutesPath string
	}{rt, h, PodRoutesPath})
	if err != nil {
		return nil, err
	}
	unit, err := render(NetworkUnitPath, 0o644, struct{ Header, ScriptPath string }{h, NetworkScriptPath})
	if err != nil {
		return nil, err
	}
	return []File{script, unit}, nil
}

// PodRoutesFile is the content of PodRoutesPath: one "CIDR VIA" line per
// pod CIDR, in the order given.
func PodRoutesFile(routes []Route) []byte {
	var b strings.Builder
	for _, r := range routes {
		fmt.Fprintf(&b, "%s %s\n", r.To, r.Via)
	}
	return []byte(b.String())
}

// RoutingDown is a shell fragment that removes node n's routes and dummy
// interfaces whatever is left of network.sh: reset runs it from the lab
// file, not from the node.
func RoutingDown(l *labfile.Lab, n *labfile.Node) string {
	rt := RoutingFor(l, n)
	var b strings.Builder
	for _, r := range rt.Routes {
		fmt.Fprintf(&b, "ip route del %s via %s 2>/dev/null\n", r.To, r.Via)
	}
	for _, d := range rt.Dummies {
		fmt.Fprintf(&b, "ip link del dev %s 2>/dev/null\n", d.Name)
	}
	return b.String()
}

// RoutingAudit is a shell fragment that prints one line per route or
// dummy interface of node n still present, and nothing on a clean node.
func RoutingAudit(l *labfile.Lab, n *labfile.Node) string {
	rt := RoutingFor(l, n)
	var b strings.Builder
	for _, r := range rt.Routes {
		fmt.Fprintf(&b, "ip -4 route show exact %s | grep -q ' via %s ' && echo 'route %s via %s'\n", r.To, r.Via, r.To, r.Via)
	}
	for _, d := range rt.Dummies {
		fmt.Fprintf(&b, "ip link show dev %s >/dev/null 2>&1 && echo 'interface %s'\n", d.Name, d.Name)
	}
	return b.String()
}
