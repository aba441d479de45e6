//go:build linux

// Package cniplugin is lab-node's CNI plugin (spec 1.0.0): ADD gives a pod a
// veth pair and an address from the node's pod CIDR and registers it with
// the eBPF datapath; DEL undoes that and is idempotent; CHECK verifies it.
//
// Inside the pod, eth0 has the pod's address as a /32 and a default route
// through GatewayIP, a link-local address whose MAC is pinned in a permanent
// neighbour entry to the host-side veth: the pod never needs ARP, and every
// packet it sends reaches the host veth, where from_pod decides its way.
package cniplugin

import (
	"encoding/json"
	"fmt"
	"net/netip"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/labctl/lab/bpf"
)

// Defaults for the fields of NetConf.
const (
	DefaultStateDir = "/var/lib/lab-node/ipam"
	DefaultMTU      = 1500
	// PluginType is the "type" of lab's network config and the plugin
	// binary's name in /opt/cni/bin.
	PluginType = "lab-node"
)

// GatewayIP is every pod's next hop, answered by the host-side veth.
var GatewayIP = netip.MustParseAddr("169.254.1.1")

// NetConf is the network configuration the lab-node daemon writes to
// /etc/cni/net.d and the runtime hands the plugin on stdin.
type NetConf struct {
	types.NetConf
	Settings

	podCIDR netip.Prefix
	mode    bpf.AttachMode
}

// Settings are lab-node's own fields of the network config.
type Settings struct {
	// PodCIDR is this node's pod CIDR (the Node's spec.podCIDR).
	PodCIDR string `json:"podCIDR"`
	// MTU of the pod veths.
	MTU int `json:"mtu,omitempty"`
	// BPFRoot is where the daemon pinned the datapath.
	BPFRoot string `json:"bpfRoot,omitempty"`
	// StateDir holds the address allocations.
	StateDir string `json:"stateDir,omitempty"`
	// AttachMode is auto (TCX, else clsact), tcx or clsact.
	AttachMode string `json:"attachMode,omitempty"`
}

// ParseNetConf decodes and checks a network configuration and fills in
// defaults.
func ParseNetConf(b []byte) (*NetConf, error) {
	var c NetConf
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("network config: %w", err)
	}
	p, err := netip.ParsePrefix(c.PodCIDR)
	if err != nil || !p.Addr().Is4() {
		return nil, fmt.Errorf("network config %q: podCIDR %q: want an IPv4 CIDR such as 10.244.1.0/24", c.Name, c.PodCIDR)
	}
	c.podCIDR = p.Masked()
	if c.mode, err = bpf.ParseAttachMode(c.AttachMode); err != nil {
		return nil, fmt.Errorf("network config %q: %w", c.Name, err)
	}
	if c.MTU == 0 {
		c.MTU = DefaultMTU
	}
	if c.BPFRoot == "" {
		c.BPFRoot = bpf.DefaultRoot
	}
	if c.StateDir == "" {
		c.StateDir = DefaultStateDir
	}
	return &c, nil
}
