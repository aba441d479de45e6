// Package provision owns the commands that act on a lab — up, reset, down,
// status — as ordered lists of phases, and the plan that explains them.
package provision

import (
	"fmt"
	"io"
	"strings"

	"github.com/labctl/lab/provision/labfile"
)

// Order says how a phase visits its nodes.
type Order string

const (
	Parallel Order = "parallel" // every node at once (bounded fan-out)
	Serial   Order = "serial"   // one node after another, in file order
	Once     Order = "once"     // on the first node only
	Local    Order = "local"    // on the machine that runs lab
)

// PlannedPhase is one line of `lab plan`: what a phase does and where.
type PlannedPhase struct {
	Name  string   `json:"name"`
	Title string   `json:"title"`
	Order Order    `json:"order"`
	Nodes []string `json:"nodes"`
}

// UpPlan lists the phases of `lab up` for l, in order, with the nodes each
// one touches. Phases with no nodes are left out.
func UpPlan(l *labfile.Lab) []PlannedPhase {
	all := names(nodePtrs(l))
	kube := names(l.KubernetesNodes())
	cps := l.ControlPlanes()
	var plan []PlannedPhase
	add := func(name, title string, o Order, nodes []string) {
		if len(nodes) > 0 {
			plan = append(plan, PlannedPhase{Name: name, Title: title, Order: o, Nodes: nodes})
		}
	}
	if l.Provider.Type != labfile.ProviderStatic {
		add("nodes", fmt.Sprintf("create the %s nodes (or keep the running ones)", l.Provider.Type), Local, all)
	}
	add("connect", "reach every node over SSH; host keys per policy "+l.SSH.KnownHosts, Parallel, all)
	add("facts", "read OS, arch, kernel, interfaces; find the interface of network "+l.Kubernetes.NodeNetwork, Parallel, all)
	add("os", "hostname, /etc/hosts, swap off, sysctls, kernel modules", Parallel, all)
	add("packages", "containerd, kubeadm/kubelet/kubectl "+l.Kubernetes.Version+"; haproxy + keepalived on load balancers", Parallel, all)
	if lbs := l.LoadBalancers(); len(lbs) > 0 {
		host, port := l.Endpoint()
		add("loadbalancer", fmt.Sprintf("render, check and start HAProxy + Keepalived; wait for VIP %s:%d", host, port), Parallel, names(lbs))
	}
	if len(cps) > 0 {
		add("init", "kubeadm init with uploaded certificates, endpoint "+l.EndpointString(), Once, names(cps[:1]))
		add("join-control-plane", "kubeadm join --control-plane, one at a time (etcd grows by one member each)", Serial, names(cps[1:]))
	}
	var workers []*labfile.Node
	for _, n := range l.Workers() {
		if !n.HasRole(labfile.RoleControlPlane) {
			workers = append(workers, n)
		}
	}
	add("join-worker", "kubeadm join as workers", Parallel, names(workers))
	switch l.CNI.Type {
	case labfile.CNIBuiltin:
		add("cni", "install lab-node, the builtin eBPF datapath", Parallel, kube)
	case labfile.CNICilium:
		add("cni", "helm upgrade --install cilium "+l.CNI.Cilium.Version+" from the first control plane", Once, names(cps[:min(1, len(cps))]))
	}
	add("ready", "wait until every node is Ready", Once, kube[:min(1, len(kube))])
	add("kubeconfig", "write the admin kubeconfig, server https://"+l.EndpointString(), Local, kube[:min(1, len(kube))])
	return plan
}

// PrintPlan writes the plan as a readable list.
func PrintPlan(w io.Writer, l *labfile.Lab, plan []PlannedPhase) {
	fmt.Fprintf(w, "lab up %s: %d nodes, %d phases, endpoint %s\n", l.Metadata.Name, len(l.Nodes), len(plan), l.EndpointString())
	for i, p := range plan {
		fmt.Fprintf(w, "%2d. %-19s %-8s %s\n", i+1, p.Name, p.Order, p.Title)
		fmt.Fprintf(w, "    %s\n", strings.Join(p.Nodes, ", "))
	}
}

func nodePtrs(l *labfile.Lab) []*labfile.Node {
	out := make([]*labfile.Node, len(l.Nodes))
	for i := range l.Nodes {
		out[i] = &l.Nodes[i]
	}
	return out
}

func names(ns []*labfile.Node) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.Name
	}
	return out
}
