// Package graph draws a lab's topology: nodes grouped by network, shaped by
// role, the VIP and the nodes that can hold it. Two notations: Mermaid (for
// Markdown and GitHub) and Graphviz DOT (for `dot -Tsvg`).
package graph

import (
	"fmt"
	"strings"

	"github.com/labctl/lab/provision/labfile"
)

// Mermaid renders the lab as a Mermaid flowchart.
func Mermaid(l *labfile.Lab) string {
	var b strings.Builder
	fmt.Fprintf(&b, "flowchart TB\n")
	for _, nw := range l.Networks {
		fmt.Fprintf(&b, "  subgraph %s[\"network %s %s\"]\n", id("net", nw.Name), nw.Name, nw.CIDR)
		for _, n := range l.Nodes {
			addr, ok := n.Addresses[nw.Name]
			if !ok || nw.Name != firstNetwork(l, n) {
				continue
			}
			open, closing := shape(n)
			fmt.Fprintf(&b, "    %s%s\"%s<br/>%s<br/>%s\"%s\n", id("node", n.Name), open, n.Name, strings.Join(n.Roles, ", "), addr, closing)
		}
		fmt.Fprintf(&b, "  end\n")
	}
	// Nodes on more than one network (routers) link to the other networks.
	for _, n := range l.Nodes {
		for _, nw := range l.Networks {
			if addr, ok := n.Addresses[nw.Name]; ok && nw.Name != firstNetwork(l, n) {
				fmt.Fprintf(&b, "  %s ---|%s| %s\n", id("node", n.Name), addr, id("net", nw.Name))
			}
		}
	}
	// Networks behind a router hang off it; so do the pods it routes.
	for _, r := range l.Routers() {
		if r.Router == nil {
			continue
		}
		for _, itf := range r.Router.Interfaces {
			p := itf.Prefix()
			fmt.Fprintf(&b, "  %s[(\"%s %s<br/>behind %s\")]\n", id("behind", r.Name+"_"+itf.Name), itf.Name, p.Masked(), r.Name)
			fmt.Fprintf(&b, "  %s ---|%s| %s\n", id("node", r.Name), p.Addr(), id("behind", r.Name+"_"+itf.Name))
		}
		if r.Router.PodRoutes {
			fmt.Fprintf(&b, "  %s([\"pods %s\"])\n", id("pods", r.Name), l.PodRange())
			fmt.Fprintf(&b, "  %s -.->|routes each node's pod CIDR| %s\n", id("node", r.Name), id("pods", r.Name))
		}
	}
	if r := l.BGPRouter(); r != nil {
		for _, n := range l.BGPPeers() {
			fmt.Fprintf(&b, "  %s <-.->|BGP AS%d-AS%d| %s\n", id("node", r.Name), l.BGP.ASN, l.BGP.NodeASN, id("node", n.Name))
		}
	}
	if host, port := l.Endpoint(); l.ControlPlane.Mode == labfile.EndpointVIP {
		fmt.Fprintf(&b, "  vip{{\"VIP %s:%d\"}}\n", host, port)
		for _, n := range l.LoadBalancers() {
			fmt.Fprintf(&b, "  vip -.->|VRRP| %s\n", id("node", n.Name))
		}
		if l.DedicatedLoadBalancers() {
			for _, lb := range l.LoadBalancers() {
				for _, cp := range l.ControlPlanes() {
					fmt.Fprintf(&b, "  %s -->|:%d| %s\n", id("node", lb.Name), l.ControlPlane.APIPort, id("node", cp.Name))
				}
			}
		}
	} else {
		fmt.Fprintf(&b, "  api([\"API %s:%d (%s)\"])\n", host, port, l.ControlPlane.Mode)
	}
	return b.String()
}

// DOT renders the lab as a Graphviz graph.
func DOT(l *labfile.Lab) string {
	var b strings.Builder
	fmt.Fprintf(&b, "graph %q {\n  rankdir=TB;\n  node [fontname=\"Helvetica\"];\n", l.Metadata.Name)
	for _, nw := range l.Networks {
		fmt.Fprintf(&b, "  subgraph %q {\n    label=%q;\n", "cluster_"+nw.Name, "network "+nw.Name+" "+nw.CIDR)
		for _, n := range l.Nodes {
			addr, ok := n.Addresses[nw.Name]
			if !ok || nw.Name != firstNetwork(l, n) {
				continue
			}
			fmt.Fprintf(&b, "    %q [label=\"%s\\n%s\\n%s\", shape=%s];\n", n.Name, n.Name, strings.Join(n.Roles, ", "), addr, dotShape(n))
		}
		fmt.Fprintf(&b, "  }\n")
	}
	for _, n := range l.Nodes {
		for _, nw := range l.Networks {
			if addr, ok := n.Addresses[nw.Name]; ok && nw.Name != firstNetwork(l, n) {
				fmt.Fprintf(&b, "  %q -- %q [label=%q];\n", n.Name, "net "+nw.Name, addr)
				fmt.Fprintf(&b, "  %q [shape=plaintext];\n", "net "+nw.Name)
			}
		}
	}
	for _, r := range l.Routers() {
		if r.Router == nil {
			continue
		}
		for _, itf := range r.Router.Interfaces {
			p := itf.Prefix()
			name := r.Name + " " + itf.Name
			fmt.Fprintf(&b, "  %q [label=%q, shape=cylinder];\n", name, fmt.Sprintf("%s %s\nbehind %s", itf.Name, p.Masked(), r.Name))
			fmt.Fprintf(&b, "  %q -- %q [label=%q];\n", r.Name, name, p.Addr().String())
		}
		if r.Router.PodRoutes {
			fmt.Fprintf(&b, "  %q [label=%q, shape=ellipse];\n", "pods "+r.Name, "pods "+l.PodRange().String())
			fmt.Fprintf(&b, "  %q -- %q [style=dashed, label=\"routes each node's pod CIDR\"];\n", r.Name, "pods "+r.Name)
		}
	}
	if r := l.BGPRouter(); r != nil {
		for _, n := range l.BGPPeers() {
			fmt.Fprintf(&b, "  %q -- %q [style=dotted, label=%q];\n", r.Name, n.Name, fmt.Sprintf("BGP AS%d-AS%d", l.BGP.ASN, l.BGP.NodeASN))
		}
	}
	if host, port := l.Endpoint(); l.ControlPlane.Mode == labfile.EndpointVIP {
		fmt.Fprintf(&b, "  \"vip\" [label=%q, shape=hexagon];\n", fmt.Sprintf("VIP %s:%d", host, port))
		for _, n := range l.LoadBalancers() {
			fmt.Fprintf(&b, "  \"vip\" -- %q [style=dashed, label=\"VRRP\"];\n", n.Name)
		}
		if l.DedicatedLoadBalancers() {
			for _, lb := range l.LoadBalancers() {
				for _, cp := range l.ControlPlanes() {
					fmt.Fprintf(&b, "  %q -- %q [label=\":%d\"];\n", lb.Name, cp.Name, l.ControlPlane.APIPort)
				}
			}
		}
	}
	b.WriteString("}\n")
	return b.String()
}

// firstNetwork is the network a node is drawn in: the one that carries
// its Kubernetes traffic.
func firstNetwork(l *labfile.Lab, n labfile.Node) string { return l.NodeNetworkOf(&n) }

func shape(n labfile.Node) (string, string) {
	switch {
	case n.HasRole(labfile.RoleControlPlane):
		return "[[", "]]"
	case n.HasRole(labfile.RoleLoadBalancer):
		return "[/", "/]"
	case n.HasRole(labfile.RoleRouter):
		return "((", "))"
	default:
		return "[", "]"
	}
}

func dotShape(n labfile.Node) string {
	switch {
	case n.HasRole(labfile.RoleControlPlane):
		return "box3d"
	case n.HasRole(labfile.RoleLoadBalancer):
		return "parallelogram"
	case n.HasRole(labfile.RoleRouter):
		return "circle"
	default:
		return "box"
	}
}

// id makes a Mermaid-safe identifier.
func id(kind, name string) string {
	return kind + "_" + strings.NewReplacer("-", "_", ".", "_").Replace(name)
}
