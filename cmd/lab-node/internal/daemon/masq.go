//go:build linux

package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
)

// MasqChain is lab-node's chain in the nat table. Traffic from this node's
// pods to anything that is not a pod leaves with the node's address:
//
//	-A POSTROUTING -s PODCIDR -j LAB-NODE-MASQ
//	-A LAB-NODE-MASQ -d <every pod CIDR> -j RETURN
//	-A LAB-NODE-MASQ -j MASQUERADE
const MasqChain = "LAB-NODE-MASQ"

// SyncMasquerade installs the rules above through iptables-restore
// --noflush, which replaces the chain's content in one step, and adds the
// POSTROUTING jump once.
func SyncMasquerade(ctx context.Context, podCIDR netip.Prefix, podCIDRs []netip.Prefix) error {
	cidrs := slices.Clone(podCIDRs)
	slices.SortFunc(cidrs, func(a, b netip.Prefix) int { return strings.Compare(a.String(), b.String()) })
	var b strings.Builder
	fmt.Fprintf(&b, "*nat\n:%s - [0:0]\n", MasqChain)
	for _, c := range cidrs {
		fmt.Fprintf(&b, "-A %s -d %s -m comment --comment \"lab-node: pod to pod\" -j RETURN\n", MasqChain, c)
	}
	fmt.Fprintf(&b, "-A %s -m comment --comment \"lab-node: pods to the outside\" -j MASQUERADE\nCOMMIT\n", MasqChain)
	restore := exec.CommandContext(ctx, "iptables-restore", "-w", "--noflush")
	restore.Stdin = strings.NewReader(b.String())
	if out, err := restore.CombinedOutput(); err != nil {
		return fmt.Errorf("iptables-restore %s: %w: %s", MasqChain, err, out)
	}
	jump := []string{"POSTROUTING", "-s", podCIDR.String(), "-m", "comment", "--comment", "lab-node: masquerade pods", "-j", MasqChain}
	check := exec.CommandContext(ctx, "iptables", append([]string{"-w", "-t", "nat", "-C"}, jump...)...)
	if check.Run() == nil {
		return nil
	}
	if out, err := exec.CommandContext(ctx, "iptables", append([]string{"-w", "-t", "nat", "-A"}, jump...)...).CombinedOutput(); err != nil {
		return fmt.Errorf("iptables -t nat -A POSTROUTING: %w: %s", err, out)
	}
	return nil
}
