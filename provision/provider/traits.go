package provider

import "time"

// NodeKind is what a provider's nodes are. It decides what a node may do
// to its kernel and what it shares with the machine that runs lab.
type NodeKind int

// Node kinds.
const (
	// Containers share the host's kernel: they lack CAP_SYS_RESOURCE
	// (so they cannot raise kernel limits such as nf_conntrack_max) and
	// share the host's conntrack table.
	Containers NodeKind = iota + 1
	// VMs have a kernel of their own, made for the lab.
	VMs
	// Hosts exist already (bare metal, or machines someone else made);
	// lab neither creates nor deletes them.
	Hosts
)

func (k NodeKind) String() string {
	switch k {
	case Containers:
		return "containers"
	case VMs:
		return "VMs"
	case Hosts:
		return "existing hosts"
	}
	return "unknown nodes"
}

// Traits are what the rest of lab needs to know about a provider's nodes
// without asking the provider anything: they hold for every lab of the
// provider type and are known before any node exists, so plans, templates
// and the SSH transport can be made from them.
type Traits struct {
	// Nodes is what the nodes are.
	Nodes NodeKind
	// NodeInterface is the node's network interface on the lab network,
	// assumed until facts are gathered from the node (see
	// templates.DefaultFacts): what a plan shows and Keepalived is
	// rendered with before lab has seen the node.
	NodeInterface string
	// ConnectTimeout bounds an SSH connection to a node. Nodes that are
	// up answer within seconds; the bound is how long one that still
	// boots may take to, so that a stopped or unreachable node fails its
	// phase soon.
	ConnectTimeout time.Duration
	// HostKeysOutOfBand is whether the provider reads the nodes' SSH host
	// keys by a side channel (NodeInfo.HostKeys), which the "pinned"
	// known-hosts policy needs. Otherwise host keys are learnt over SSH
	// only, on first use or from known_hosts.
	HostKeysOutOfBand bool
	// CreatesNodes is whether Create makes anything. When it does not,
	// `lab up` only asks the provider where the nodes are.
	CreatesNodes bool
	// Deletes says, in one line for people, what Delete removes: `lab
	// down` shows it in its plan.
	Deletes string
	// BundleRootFS is whether a bundle for the provider's labs carries
	// the node image's root file system, from which an offline site
	// builds the nodes' image.
	BundleRootFS bool
}

// Container reports whether nodes are containers: they share the host's
// kernel and conntrack table, so the kubelet and kube-proxy must leave
// kernel limits alone.
func (t Traits) Container() bool { return t.Nodes == Containers }
