package labfile

import (
	"net/netip"
	"strconv"
)

// ControlPlanes returns the control-plane nodes in file order; the first one
// runs `kubeadm init`.
func (l *Lab) ControlPlanes() []*Node { return l.withRole(RoleControlPlane) }

// Workers returns the worker nodes in file order.
func (l *Lab) Workers() []*Node { return l.withRole(RoleWorker) }

// InCluster reports whether n is a node of the Kubernetes cluster (a
// control plane or a worker), not only a load balancer, router or client.
func (n Node) InCluster() bool { return n.HasRole(RoleControlPlane) || n.HasRole(RoleWorker) }

// IsFirstControlPlane reports whether n is the control plane that runs
// `kubeadm init`, and with it what lab does once per cluster.
func (l *Lab) IsFirstControlPlane(n *Node) bool {
	cps := l.ControlPlanes()
	return len(cps) > 0 && cps[0].Name == n.Name
}

// IsLoadBalancer reports whether n is one of the lab's load-balancer nodes
// (dedicated ones, or the control planes in vip mode without them).
func (l *Lab) IsLoadBalancer(n *Node) bool {
	for _, lb := range l.LoadBalancers() {
		if lb.Name == n.Name {
			return true
		}
	}
	return false
}

// KubernetesNodes returns the nodes that join the cluster: control planes
// first, then workers, each in file order.
func (l *Lab) KubernetesNodes() []*Node {
	out := l.ControlPlanes()
	for _, n := range l.Workers() {
		if !n.HasRole(RoleControlPlane) {
			out = append(out, n)
		}
	}
	return out
}

// LoadBalancers returns the nodes that run Keepalived and HAProxy in vip
// mode: the dedicated loadbalancer nodes if the lab has any, else the
// control-plane nodes. Outside vip mode there are none.
func (l *Lab) LoadBalancers() []*Node {
	if l.ControlPlane.Mode != EndpointVIP {
		return nil
	}
	if lbs := l.withRole(RoleLoadBalancer); len(lbs) > 0 {
		return lbs
	}
	return l.ControlPlanes()
}

// DedicatedLoadBalancers reports whether HAProxy runs on its own nodes, away
// from any kube-apiserver.
func (l *Lab) DedicatedLoadBalancers() bool { return len(l.withRole(RoleLoadBalancer)) > 0 }

func (l *Lab) withRole(r string) []*Node {
	var out []*Node
	for i := range l.Nodes {
		if l.Nodes[i].HasRole(r) {
			out = append(out, &l.Nodes[i])
		}
	}
	return out
}

// Node returns the node called name, or nil.
func (l *Lab) Node(name string) *Node {
	for i := range l.Nodes {
		if l.Nodes[i].Name == name {
			return &l.Nodes[i]
		}
	}
	return nil
}

// Network returns the network called name, or nil.
func (l *Lab) Network(name string) *Network {
	for i := range l.Networks {
		if l.Networks[i].Name == name {
			return &l.Networks[i]
		}
	}
	return nil
}

// NodeIP is the node's address on the lab's node network: its kubelet
// node-ip, apiserver advertise address and VRRP source. It is never a NAT
// address such as VirtualBox's shared 10.0.2.15.
func (l *Lab) NodeIP(n *Node) netip.Addr {
	a, _ := netip.ParseAddr(n.Addresses[l.NodeNetworkOf(n)])
	return a
}

// NodeNetwork returns the network that carries Kubernetes traffic.
func (l *Lab) NodeNetworkDef() *Network { return l.Network(l.Kubernetes.NodeNetwork) }

// Endpoint is the host and port every client and kubelet uses to reach the
// API server: the VIP, the external address, or the first control plane.
func (l *Lab) Endpoint() (host string, port int) {
	switch l.ControlPlane.Mode {
	case EndpointVIP:
		return l.ControlPlane.VIP, l.ControlPlane.LBPort
	case EndpointExternal:
		return l.ControlPlane.Address, l.ControlPlane.LBPort
	default:
		if cps := l.ControlPlanes(); len(cps) > 0 {
			return l.NodeIP(cps[0]).String(), l.ControlPlane.APIPort
		}
		return "", l.ControlPlane.APIPort
	}
}

// EndpointString is Endpoint as host:port.
func (l *Lab) EndpointString() string {
	h, p := l.Endpoint()
	if a, err := netip.ParseAddr(h); err == nil && a.Is6() {
		return "[" + h + "]:" + strconv.Itoa(p)
	}
	return h + ":" + strconv.Itoa(p)
}

// SSHTarget returns where lab connects to reach node n.
func (l *Lab) SSHTarget(n *Node) (host string, port int, user string) {
	host, port, user = l.NodeIP(n).String(), l.SSH.Port, l.SSH.User
	if n.SSH != nil {
		if n.SSH.Host != "" {
			host = n.SSH.Host
		}
		if n.SSH.Port != 0 {
			port = n.SSH.Port
		}
		if n.SSH.User != "" {
			user = n.SSH.User
		}
	}
	return host, port, user
}
