//go:build linux

package preflight

import (
	"fmt"
	"os"
	"runtime"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// Options choose what to check for.
type Options struct {
	Node          string
	Datapath      string // Builtin or Cilium
	CiliumVersion string // for Cilium's minimum kernel
	// Container says the node is a container (the docker provider's),
	// which Cilium needs on cgroup v2.
	Container bool
}

// Probe checks the running kernel. It only loads throw-away probe programs
// and maps (through cilium/ebpf's feature probes) and queries the loopback
// device: it attaches nothing.
func Probe(opts Options) (Report, error) {
	if opts.Datapath != Builtin && opts.Datapath != Cilium {
		return Report{}, fmt.Errorf("preflight: datapath %q: want %s or %s", opts.Datapath, Builtin, Cilium)
	}
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return Report{}, fmt.Errorf("preflight: uname: %w", err)
	}
	r := Report{
		Node:          opts.Node,
		Kernel:        unix.ByteSliceToString(uts.Release[:]),
		Arch:          runtime.GOARCH,
		Datapath:      opts.Datapath,
		CiliumVersion: opts.CiliumVersion,
	}
	cilium := opts.Datapath == Cilium
	add := func(name string, required bool, err error) {
		c := Check{Name: name, OK: err == nil, Required: required}
		if err != nil {
			c.Detail = err.Error()
		}
		r.Checks = append(r.Checks, c)
	}

	minKernel, minFor := BuiltinMinKernel, "lab's builtin datapath"
	if cilium {
		v, err := CiliumMinKernel(opts.CiliumVersion)
		if err != nil {
			return Report{}, fmt.Errorf("preflight: %w", err)
		}
		minKernel, minFor = v, "Cilium "+opts.CiliumVersion
	}
	kv, err := ParseKernelVersion(r.Kernel)
	if err == nil && kv.Less(minKernel) {
		err = fmt.Errorf("%s needs %s or newer, this is %s", minFor, minKernel, kv)
	}
	add("kernel version >= "+minKernel.String(), true, err)

	add("bpf() syscall usable (root, not locked down)", true, features.HaveProgramType(ebpf.SocketFilter))
	add("program type sched_cls (TC)", true, features.HaveProgramType(ebpf.SchedCLS))
	add("program type xdp", cilium, features.HaveProgramType(ebpf.XDP))
	for _, m := range []struct {
		t        ebpf.MapType
		required bool
	}{
		{ebpf.Hash, true}, {ebpf.PerCPUHash, true}, {ebpf.LPMTrie, true},
		{ebpf.LRUHash, cilium}, {ebpf.PerCPUArray, cilium},
	} {
		add("map type "+m.t.String(), m.required, features.HaveMapType(m.t))
	}
	for _, h := range []struct {
		name string
		fn   asm.BuiltinFunc
	}{
		{"bpf_redirect", asm.FnRedirect}, {"bpf_redirect_neigh", asm.FnRedirectNeigh},
		{"bpf_redirect_peer", asm.FnRedirectPeer}, {"bpf_fib_lookup", asm.FnFibLookup},
	} {
		add("helper "+h.name, true, features.HaveProgramHelper(ebpf.SchedCLS, h.fn))
	}
	add("tcx (otherwise clsact)", false, haveTCX())
	_, err = btf.LoadKernelSpec()
	add("kernel BTF (/sys/kernel/btf/vmlinux)", false, err)
	add("bpf filesystem (bpffs)", true, bpffsAvailable())
	if cilium {
		ciliumChecks(add, opts)
	}

	r.OK = len(r.Missing()) == 0
	return r, nil
}

// ciliumChecks are what Cilium's chart and agent need of the node beyond
// lab's own datapath: kernel features (socket load balancing, the monitor's
// perf ring, cgroup v2) and the node's mounts, as this process (lab-node,
// run over SSH in the node's mount namespace) sees them.
func ciliumChecks(add func(string, bool, error), opts Options) {
	add("program type cgroup_sock_addr (socket load balancing, CONFIG_CGROUP_BPF)", true, features.HaveProgramType(ebpf.CGroupSockAddr))
	add("map type "+ebpf.PerfEventArray.String()+" (the agent's monitor)", true, features.HaveMapType(ebpf.PerfEventArray))
	add("cgroup2 filesystem", true, filesystemKnown("cgroup2"))
	data, err := os.ReadFile("/proc/self/mountinfo")
	var mounts []Mount
	if err == nil {
		mounts, err = ParseMountinfo(string(data))
	}
	either := func(check error) error {
		if err != nil {
			return err
		}
		return check
	}
	add(CheckBPFFS, true, either(BPFFSMounted(mounts, "/sys/fs/bpf")))
	add(CheckBPFFSShared, true, either(SharedMount(mounts, "/sys/fs/bpf")))
	// Reported, not required, on container nodes: whether the socket
	// programs at a cgroup v1 host's root harm more than they help is
	// for the user to judge (the agents' maps are alike on every node).
	if opts.Container {
		add(CheckCgroup2At, false, either(Cgroup2At(mounts, "/sys/fs/cgroup")))
	}
	// apply-sysctl-overwrites writes /etc/sysctl.d and restarts
	// systemd-sysctl, which skips a read-only /proc/sys: rp_filter then
	// stays as it was, and never fails the pod.
	add(CheckSysctlWrites, false, unix.Access("/proc/sys/net/ipv4/conf/all/rp_filter", unix.W_OK))
	add("vxlan module (routingMode tunnel)", false, moduleAvailable("vxlan"))
}

// filesystemKnown: the kernel knows the file system type name.
func filesystemKnown(name string) error {
	b, err := os.ReadFile("/proc/filesystems")
	if err != nil {
		return err
	}
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) > 0 && f[len(f)-1] == name {
			return nil
		}
	}
	return fmt.Errorf("%s not in /proc/filesystems", name)
}

// moduleAvailable: the module is loaded or built in, or its file is
// there to load.
func moduleAvailable(name string) error {
	if _, err := os.Stat("/sys/module/" + name); err == nil {
		return nil
	}
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return err
	}
	dir := "/lib/modules/" + unix.ByteSliceToString(uts.Release[:])
	for _, f := range []string{"modules.builtin", "modules.dep"} {
		b, err := os.ReadFile(dir + "/" + f)
		if err == nil && strings.Contains(string(b), "/"+name+".ko") {
			return nil
		}
	}
	return fmt.Errorf("%s is neither loaded nor in %s", name, dir)
}

// haveTCX queries the loopback device for TCX programs: kernels without
// TCX reject the attach type. Nothing is attached.
func haveTCX() error {
	lo, err := loopbackIndex()
	if err != nil {
		return err
	}
	_, err = link.QueryPrograms(link.QueryOptions{Target: lo, Attach: ebpf.AttachTCXIngress})
	return err
}

func loopbackIndex() (int, error) {
	b, err := os.ReadFile("/sys/class/net/lo/ifindex")
	if err != nil {
		return 1, nil // lo is ifindex 1 in every network namespace
	}
	var i int
	if _, err := fmt.Sscanf(string(b), "%d", &i); err != nil {
		return 0, fmt.Errorf("ifindex of lo: %w", err)
	}
	return i, nil
}

// bpffsAvailable: the kernel knows the bpf filesystem type.
func bpffsAvailable() error { return filesystemKnown("bpf") }
