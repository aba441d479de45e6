//go:build linux

package bpf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// AttachMode chooses how programs are hooked to an interface.
type AttachMode string

const (
	// AttachAuto uses TCX where the kernel has it (6.6+), clsact otherwise.
	AttachAuto AttachMode = ""
	// AttachTCX uses TCX links, pinned under ROOT/links.
	AttachTCX AttachMode = "tcx"
	// AttachClsact uses a clsact qdisc with direct-action cls_bpf filters,
	// which live as long as the interface and need no pins.
	AttachClsact AttachMode = "clsact"
)

// ParseAttachMode accepts "", "auto", "tcx" and "clsact".
func ParseAttachMode(s string) (AttachMode, error) {
	switch s {
	case "", "auto":
		return AttachAuto, nil
	case string(AttachTCX), string(AttachClsact):
		return AttachMode(s), nil
	}
	return "", fmt.Errorf("attach mode %q: want auto, tcx or clsact", s)
}

type hook string

const (
	ingress hook = "ingress"
	egress  hook = "egress"
)

// Interface names an attach point in the current network namespace.
type Interface struct {
	Name  string
	Index int
}

// AttachPod hooks a pod's host-side veth: from_pod on ingress (what the pod
// sends), to_pod on egress (what the host stack sends to it). Attaching again
// replaces the programs, so a retried CNI ADD is harmless.
func (d *Datapath) AttachPod(iface Interface) error {
	if err := d.attach(d.fromPod, iface, ingress); err != nil {
		return err
	}
	return d.attach(d.toPod, iface, egress)
}

// AttachUplink hooks the node's uplink: from_uplink on ingress.
func (d *Datapath) AttachUplink(iface Interface) error {
	return d.attach(d.fromUplink, iface, ingress)
}

// Detach removes lab's programs from an interface. Unknown interfaces and
// interfaces without programs are not an error (DEL is idempotent); the
// kernel removes hooks by itself when an interface is deleted, but TCX link
// pins must still go.
func (d *Datapath) Detach(iface Interface) error {
	var errs []error
	for _, h := range []hook{ingress, egress} {
		errs = append(errs, d.unpinLink(iface.Name, h))
		if iface.Index > 0 {
			errs = append(errs, detachClsact(iface, h))
		}
	}
	return errors.Join(errs...)
}

func (d *Datapath) attach(prog *ebpf.Program, iface Interface, h hook) error {
	if d.mode != AttachClsact {
		err := d.attachTCX(prog, iface, h)
		if err == nil || d.mode == AttachTCX || !errors.Is(err, ebpf.ErrNotSupported) {
			return err
		}
	}
	return attachClsact(prog, iface, h)
}

// linkPin is where the TCX link of ifname's hook is pinned. bpffs refuses
// names with a dot, which interface names may have (eth0.100), so dots
// become colons, which interface names may not have.
func (d *Datapath) linkPin(ifname string, h hook) string {
	return filepath.Join(d.root, "links", string(h), strings.ReplaceAll(ifname, ".", ":"))
}

func (d *Datapath) attachTCX(prog *ebpf.Program, iface Interface, h hook) error {
	pin := d.linkPin(iface.Name, h)
	if l, err := link.LoadPinnedLink(pin, nil); err == nil {
		info, infoErr := l.Info()
		if infoErr == nil && info.TCX() != nil && int(info.TCX().Ifindex) == iface.Index {
			err := l.Update(prog)
			l.Close()
			if err != nil {
				return fmt.Errorf("%s %s: update tcx link: %w", iface.Name, h, err)
			}
			return nil
		}
		// A pin left by an earlier interface of the same name.
		l.Unpin()
		l.Close()
	}
	at := ebpf.AttachTCXIngress
	if h == egress {
		at = ebpf.AttachTCXEgress
	}
	l, err := link.AttachTCX(link.TCXOptions{Interface: iface.Index, Program: prog, Attach: at})
	if err != nil {
		return fmt.Errorf("%s %s: attach tcx: %w", iface.Name, h, err)
	}
	defer l.Close()
	if err := l.Pin(pin); err != nil {
		return fmt.Errorf("%s %s: pin tcx link: %w", iface.Name, h, err)
	}
	return nil
}

func (d *Datapath) unpinLink(ifname string, h hook) error {
	pin := d.linkPin(ifname, h)
	l, err := link.LoadPinnedLink(pin, nil)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		// Not a link we can load: remove the file anyway.
		if rmErr := os.Remove(pin); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) {
			return fmt.Errorf("%s %s: remove link pin: %w", ifname, h, rmErr)
		}
		return nil
	}
	defer l.Close()
	if err := l.Unpin(); err != nil {
		return fmt.Errorf("%s %s: unpin tcx link: %w", ifname, h, err)
	}
	return nil
}

// upgradeLinks points every pinned TCX link at the freshly loaded program of
// its hook, so a new lab-node version takes over running pods.
func (d *Datapath) upgradeLinks() error {
	for _, h := range []hook{ingress, egress} {
		dir := filepath.Join(d.root, "links", string(h))
		entries, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("list pinned links: %w", err)
		}
		for _, e := range entries {
			l, err := link.LoadPinnedLink(filepath.Join(dir, e.Name()), nil)
			if err != nil {
				continue
			}
			info, err := l.Info()
			if err != nil {
				l.Close()
				continue
			}
			prog := d.fromPod
			switch {
			case h == egress:
				prog = d.toPod
			case isUplinkProgram(info.Program):
				prog = d.fromUplink
			}
			err = l.Update(prog)
			l.Close()
			if err != nil {
				return fmt.Errorf("upgrade link %s %s: %w", e.Name(), h, err)
			}
		}
	}
	return nil
}

// isUplinkProgram tells whether the program a link runs now is a
// from_uplink program (of this or an older version).
func isUplinkProgram(id ebpf.ProgramID) bool {
	p, err := ebpf.NewProgramFromID(id)
	if err != nil {
		return false
	}
	defer p.Close()
	info, err := p.Info()
	return err == nil && info.Name == datapathProgFromUplink
}

func filterParent(h hook) uint32 {
	if h == egress {
		return netlink.HANDLE_MIN_EGRESS
	}
	return netlink.HANDLE_MIN_INGRESS
}

// lab's cls_bpf filters use one fixed priority and handle, so replacing one
// never stacks a second copy.
const (
	filterPriority = 1
	filterHandle   = 0x1ab
)

func attachClsact(prog *ebpf.Program, iface Interface, h hook) error {
	qdisc := &netlink.GenericQdisc{
		QdiscAttrs: netlink.QdiscAttrs{
			LinkIndex: iface.Index,
			Handle:    netlink.MakeHandle(0xffff, 0),
			Parent:    netlink.HANDLE_CLSACT,
		},
		QdiscType: "clsact",
	}
	if err := netlink.QdiscReplace(qdisc); err != nil {
		return fmt.Errorf("%s: add clsact qdisc: %w", iface.Name, err)
	}
	info, err := prog.Info()
	if err != nil {
		return fmt.Errorf("%s %s: program info: %w", iface.Name, h, err)
	}
	filter := &netlink.BpfFilter{
		FilterAttrs: netlink.FilterAttrs{
			LinkIndex: iface.Index,
			Parent:    filterParent(h),
			Handle:    filterHandle,
			Priority:  filterPriority,
			Protocol:  unix.ETH_P_ALL,
		},
		Fd:           prog.FD(),
		Name:         "lab-" + info.Name,
		DirectAction: true,
	}
	if err := netlink.FilterReplace(filter); err != nil {
		return fmt.Errorf("%s %s: add cls_bpf filter: %w", iface.Name, h, err)
	}
	return nil
}

func detachClsact(iface Interface, h hook) error {
	l, err := netlink.LinkByIndex(iface.Index)
	if err != nil {
		return nil // gone already
	}
	filters, err := netlink.FilterList(l, filterParent(h))
	if err != nil {
		return nil // no clsact qdisc
	}
	for _, f := range filters {
		if bf, ok := f.(*netlink.BpfFilter); ok && bf.Handle == filterHandle && bf.Priority == filterPriority {
			if err := netlink.FilterDel(f); err != nil {
				return fmt.Errorf("%s %s: delete cls_bpf filter: %w", iface.Name, h, err)
			}
		}
	}
	return nil
}
