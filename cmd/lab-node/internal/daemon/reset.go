//go:build linux

package daemon

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/labctl/lab/bpf"
	"github.com/labctl/lab/cmd/lab-node/internal/cniplugin"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Reset removes everything Run and the plugin put on the node: pod veths,
// the pinned datapath (which detaches its TCX links), clsact filters on the
// uplink, lab-node's routes, the masquerade chain, the CNI config, the
// installed plugin and the IPAM state. Used by `lab reset`; missing pieces
// are not an error, so it can run twice.
func Reset(ctx context.Context, cfg Config) error {
	var errs []error
	links, err := netlink.LinkList()
	if err != nil {
		errs = append(errs, fmt.Errorf("list links: %w", err))
	}
	if dp, err := bpf.Open(cfg.BPFRoot, bpf.AttachAuto); err == nil {
		for _, l := range links {
			// Detach only touches lab's own filters and pins.
			errs = append(errs, dp.Detach(bpf.Interface{Name: l.Attrs().Name, Index: l.Attrs().Index}))
		}
		errs = append(errs, dp.Unpin())
		dp.Close()
	} else if err := os.RemoveAll(cfg.BPFRoot); err != nil {
		errs = append(errs, fmt.Errorf("remove %s: %w", cfg.BPFRoot, err))
	}
	for _, l := range links {
		if _, ok := l.(*netlink.Veth); ok && isPodVeth(l.Attrs().Name) {
			if err := netlink.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
				errs = append(errs, fmt.Errorf("delete pod veth %s: %w", l.Attrs().Name, err))
			}
		}
	}
	errs = append(errs, SyncRoutes(nil))
	errs = append(errs, removeMasquerade(ctx))
	for _, path := range []string{
		filepath.Join(cfg.CNIConfDir, ConfFile),
		filepath.Join(cfg.CNIBinDir, cniplugin.PluginType),
	} {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := os.RemoveAll(cfg.StateDir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// isPodVeth: the plugin names host veths "lab" + 11 hex digits.
func isPodVeth(name string) bool {
	if len(name) != 14 || !strings.HasPrefix(name, "lab") {
		return false
	}
	return !strings.ContainsFunc(name[3:], func(r rune) bool { return !strings.ContainsRune("0123456789abcdef", r) })
}

func removeMasquerade(ctx context.Context) error {
	out, err := exec.CommandContext(ctx, "iptables", "-w", "-t", "nat", "-L", "POSTROUTING", "-n", "--line-numbers").Output()
	if err != nil {
		if _, lookErr := exec.LookPath("iptables"); lookErr != nil {
			return nil // no iptables, no rules
		}
		return fmt.Errorf("iptables -t nat -L POSTROUTING: %w", err)
	}
	var nums []string
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) > 1 && f[1] == MasqChain {
			nums = append(nums, f[0])
		}
	}
	slices.Reverse(nums) // delete from the bottom so numbers stay valid
	for _, n := range nums {
		if out, err := exec.CommandContext(ctx, "iptables", "-w", "-t", "nat", "-D", "POSTROUTING", n).CombinedOutput(); err != nil {
			return fmt.Errorf("iptables -t nat -D POSTROUTING %s: %w: %s", n, err, out)
		}
	}
	// Flush and delete the chain, if it exists.
	if exec.CommandContext(ctx, "iptables", "-w", "-t", "nat", "-n", "-L", MasqChain).Run() == nil {
		for _, op := range []string{"-F", "-X"} {
			if out, err := exec.CommandContext(ctx, "iptables", "-w", "-t", "nat", op, MasqChain).CombinedOutput(); err != nil {
				return fmt.Errorf("iptables -t nat %s %s: %w: %s", op, MasqChain, err, out)
			}
		}
	}
	return nil
}
