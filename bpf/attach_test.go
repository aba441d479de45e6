//go:build linux

package bpf

import (
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/labctl/lab/bpf/bpftest"
	"github.com/vishvananda/netlink"
)

// hooked reports which of lab's programs run on an interface's ingress and
// egress, whichever way they were attached.
func hooked(t *testing.T, iface Interface) (in, out string) {
	t.Helper()
	name := func(h hook) string {
		at := ebpf.AttachTCXIngress
		if h == egress {
			at = ebpf.AttachTCXEgress
		}
		var found string
		res, err := link.QueryPrograms(link.QueryOptions{Target: iface.Index, Attach: at})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range res.Programs {
			prog, err := ebpf.NewProgramFromID(p.ID)
			if err != nil {
				t.Fatal(err)
			}
			info, _ := prog.Info()
			prog.Close()
			found += "tcx:" + info.Name
		}
		l, _ := netlink.LinkByIndex(iface.Index)
		filters, _ := netlink.FilterList(l, filterParent(h))
		for _, f := range filters {
			if bf, ok := f.(*netlink.BpfFilter); ok {
				found += "clsact:" + bf.Name
			}
		}
		return found
	}
	return name(ingress), name(egress)
}

func TestAttachDetach(t *testing.T) {
	for _, mode := range []AttachMode{AttachTCX, AttachClsact} {
		t.Run(string(mode), func(t *testing.T) {
			bpftest.Require(t)
			d, err := Load(bpftest.BPFFS(t), mode)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			ns := bpftest.Netns(t, "attach")
			bpftest.IP(t, "-n", ns, "link", "add", "lab0", "type", "veth", "peer", "name", "pod0")
			bpftest.IP(t, "-n", ns, "link", "add", "up0", "type", "veth", "peer", "name", "up1")
			err = bpftest.Do(ns, func() error {
				pod, _ := netlink.LinkByName("lab0")
				up, _ := netlink.LinkByName("up0")
				podIf := Interface{Name: "lab0", Index: pod.Attrs().Index}
				upIf := Interface{Name: "up0", Index: up.Attrs().Index}
				p := map[AttachMode]string{AttachTCX: "tcx:", AttachClsact: "clsact:lab-"}[mode]

				for range 2 { // attaching again replaces, never stacks
					if err := d.AttachPod(podIf); err != nil {
						return err
					}
					if err := d.AttachUplink(upIf); err != nil {
						return err
					}
				}
				if in, out := hooked(t, podIf); in != p+"from_pod" || out != p+"to_pod" {
					t.Errorf("pod veth: ingress %q egress %q", in, out)
				}
				if in, out := hooked(t, upIf); in != p+"from_uplink" || out != "" {
					t.Errorf("uplink: ingress %q egress %q", in, out)
				}

				// A restarted daemon moves pinned links to its programs.
				if mode == AttachTCX {
					d2, err := Load(d.Root(), mode)
					if err != nil {
						return err
					}
					d2.Close()
					if in, _ := hooked(t, upIf); in != "tcx:from_uplink" {
						t.Errorf("uplink after reload: %q", in)
					}
				}

				for _, iface := range []Interface{podIf, upIf} {
					if err := d.Detach(iface); err != nil {
						return err
					}
					if in, out := hooked(t, iface); in != "" || out != "" {
						t.Errorf("%s after Detach: ingress %q egress %q", iface.Name, in, out)
					}
				}
				return d.Detach(Interface{Name: "gone0", Index: 9999})
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}
