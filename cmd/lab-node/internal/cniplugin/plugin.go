//go:build linux

package cniplugin

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/labctl/lab/bpf"
	"github.com/labctl/lab/cmd/lab-node/internal/ipam"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// CrashEnv names a fault-injection point for tests: when the variable is
// set to a step name ("ipam", "veth", "endpoint"), ADD exits abruptly right
// after that step, as if the node lost power, leaving its partial work.
const CrashEnv = "LAB_NODE_CNI_CRASH_AFTER"

// errIPAM is the plugin's own error code (the spec leaves 100+ to
// plugins) for "no address could be given".
const errIPAM uint = 100

// Main runs the plugin: the runtime sets CNI_COMMAND and friends and writes
// the network config on stdin; results and errors (CNI error JSON) go to
// stdout. It exits the process.
func Main() {
	skel.PluginMainFuncs(skel.CNIFuncs{Add: cmdAdd, Del: cmdDel, Check: cmdCheck},
		version.PluginSupports("0.3.1", "0.4.0", "1.0.0"),
		"lab-node: lab's eBPF pod network")
}

// HostVethName is the host-side veth of (containerID, ifname): "lab" and
// 11 hex digits of a hash, within the kernel's 15-character limit and the
// same on every retry.
func HostVethName(containerID, ifname string) string {
	sum := sha256.Sum256([]byte(containerID + "/" + ifname))
	return "lab" + hex.EncodeToString(sum[:])[:11]
}

func owner(args *skel.CmdArgs) ipam.Owner {
	o := ipam.Owner{ContainerID: args.ContainerID, IfName: args.IfName}
	var ns, name string
	for kv := range strings.SplitSeq(args.Args, ";") {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "K8S_POD_NAMESPACE":
			ns = v
		case "K8S_POD_NAME":
			name = v
		}
	}
	if name != "" {
		o.Pod = ns + "/" + name
	}
	return o
}

// crashPoint exits when the test asked for a crash after step.
func crashPoint(step string) {
	if os.Getenv(CrashEnv) == step {
		os.Exit(99)
	}
}

func cmdAdd(args *skel.CmdArgs) (err error) {
	conf, err := ParseNetConf(args.StdinData)
	if err != nil {
		return types.NewError(types.ErrDecodingFailure, "bad network config", err.Error())
	}
	dp, err := bpf.Open(conf.BPFRoot, conf.mode)
	if err != nil {
		return types.NewError(types.ErrTryAgainLater, "eBPF datapath not loaded", err.Error())
	}
	defer dp.Close()
	podNS, err := netns.GetFromPath(args.Netns)
	if err != nil {
		return types.NewError(types.ErrInvalidNetNS, "cannot open the pod's network namespace", err.Error())
	}
	defer podNS.Close()
	alloc, err := ipam.New(conf.StateDir, conf.podCIDR)
	if err != nil {
		return types.NewError(errIPAM, "ipam", err.Error())
	}

	own := owner(args)
	hostIf := HostVethName(args.ContainerID, args.IfName)
	// Whatever fails below, the node is left as if ADD never ran: the
	// runtime will call ADD again (or DEL), and neither must trip over
	// half-done work.
	defer func() {
		if err != nil {
			undo(dp, alloc, own, hostIf)
		}
	}()

	ip, err := alloc.Allocate(own)
	if err != nil {
		return types.NewError(errIPAM, "no address for the pod", err.Error())
	}
	crashPoint("ipam")

	host, pod, err := makeVeth(conf, podNS, hostIf, args.IfName, ip)
	if err != nil {
		return fmt.Errorf("pod %s: %w", own.Pod, err)
	}
	crashPoint("veth")

	ep := bpf.Endpoint{Ifindex: host.Attrs().Index, PodMAC: pod.Attrs().HardwareAddr, HostMAC: host.Attrs().HardwareAddr}
	if err := dp.AddEndpoint(ip, ep); err != nil {
		return err
	}
	crashPoint("endpoint")
	if err := dp.AttachPod(bpf.Interface{Name: hostIf, Index: host.Attrs().Index}); err != nil {
		return err
	}

	result := &types100.Result{
		CNIVersion: types100.ImplementedSpecVersion,
		Interfaces: []*types100.Interface{
			{Name: hostIf, Mac: host.Attrs().HardwareAddr.String()},
			{Name: args.IfName, Mac: pod.Attrs().HardwareAddr.String(), Sandbox: args.Netns},
		},
		IPs: []*types100.IPConfig{{
			Interface: types100.Int(1),
			Address:   net.IPNet{IP: ip.AsSlice(), Mask: net.CIDRMask(32, 32)},
			Gateway:   GatewayIP.AsSlice(),
		}},
		Routes: []*types.Route{{Dst: net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, GW: GatewayIP.AsSlice()}},
	}
	return types.PrintResult(result, conf.CNIVersion)
}

// makeVeth creates the veth pair with its pod end already in the pod's
// namespace, and configures both ends. A host veth of the same name (left by
// a crashed ADD) is deleted first, taking its pod end with it.
func makeVeth(conf *NetConf, podNS netns.NsHandle, hostIf, podIf string, ip netip.Addr) (host, pod netlink.Link, err error) {
	if old, err := netlink.LinkByName(hostIf); err == nil {
		if err := netlink.LinkDel(old); err != nil {
			return nil, nil, fmt.Errorf("delete stale veth %s: %w", hostIf, err)
		}
	}
	inPod, err := netlink.NewHandleAt(podNS)
	if err != nil {
		return nil, nil, fmt.Errorf("netlink in pod netns: %w", err)
	}
	defer inPod.Close()
	if _, err := inPod.LinkByName(podIf); err == nil {
		return nil, nil, fmt.Errorf("interface %s already exists in the pod's network namespace", podIf)
	}

	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: hostIf, MTU: conf.MTU},
		PeerName:      podIf,
		PeerNamespace: netlink.NsFd(podNS),
	}
	if err := netlink.LinkAdd(veth); err != nil {
		return nil, nil, fmt.Errorf("create veth %s: %w", hostIf, err)
	}
	if host, err = netlink.LinkByName(hostIf); err != nil {
		return nil, nil, fmt.Errorf("veth %s: %w", hostIf, err)
	}
	if pod, err = inPod.LinkByName(podIf); err != nil {
		return nil, nil, fmt.Errorf("veth %s in pod: %w", podIf, err)
	}

	// Pod side: address, gateway route, default route, pinned gateway MAC.
	gw := GatewayIP.AsSlice()
	steps := []struct {
		what string
		do   func() error
	}{
		{"set pod veth up", func() error { return inPod.LinkSetUp(pod) }},
		{"add pod address", func() error {
			return inPod.AddrAdd(pod, &netlink.Addr{IPNet: &net.IPNet{IP: ip.AsSlice(), Mask: net.CIDRMask(32, 32)}})
		}},
		{"add gateway route", func() error {
			return inPod.RouteReplace(&netlink.Route{LinkIndex: pod.Attrs().Index, Scope: netlink.SCOPE_LINK,
				Dst: &net.IPNet{IP: gw, Mask: net.CIDRMask(32, 32)}})
		}},
		{"add default route", func() error {
			return inPod.RouteReplace(&netlink.Route{LinkIndex: pod.Attrs().Index, Gw: gw})
		}},
		{"pin gateway MAC", func() error {
			return inPod.NeighSet(&netlink.Neigh{LinkIndex: pod.Attrs().Index, Family: unix.AF_INET,
				State: netlink.NUD_PERMANENT, IP: gw, HardwareAddr: host.Attrs().HardwareAddr})
		}},
		// Host side: up, and a /32 route so the host stack (kube-proxy,
		// replies to the pod) reaches the pod through its veth.
		{"set host veth up", func() error { return netlink.LinkSetUp(host) }},
		{"add host route", func() error {
			return netlink.RouteReplace(&netlink.Route{LinkIndex: host.Attrs().Index, Scope: netlink.SCOPE_LINK,
				Dst: &net.IPNet{IP: ip.AsSlice(), Mask: net.CIDRMask(32, 32)}})
		}},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			return nil, nil, fmt.Errorf("%s (%s, %s): %w", s.what, hostIf, ip, err)
		}
	}
	return host, pod, nil
}

// undo removes everything ADD may have made for (own, hostIf). It is the
// heart of DEL and of a failed ADD, so every step tolerates "not there".
func undo(dp *bpf.Datapath, alloc *ipam.Allocator, own ipam.Owner, hostIf string) error {
	var errs []error
	iface := bpf.Interface{Name: hostIf}
	if l, err := netlink.LinkByName(hostIf); err == nil {
		iface.Index = l.Attrs().Index
	}
	if dp != nil {
		errs = append(errs, dp.Detach(iface))
		if ip, ok, err := alloc.Lookup(own); err != nil {
			errs = append(errs, err)
		} else if ok {
			// Only remove the endpoint if it is still ours: the address
			// may already belong to a newer pod after a lost DEL.
			ep, found, err := dp.Endpoint(ip)
			errs = append(errs, err)
			if found && (iface.Index == 0 || ep.Ifindex == iface.Index) {
				errs = append(errs, dp.DeleteEndpoint(ip))
			}
		}
	}
	if iface.Index != 0 {
		// Deleting the host end deletes the pod end and the /32 route.
		if err := netlink.LinkDel(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Index: iface.Index, Name: hostIf}}); err != nil &&
			!errors.Is(err, unix.ENODEV) {
			errs = append(errs, fmt.Errorf("delete veth %s: %w", hostIf, err))
		}
	}
	errs = append(errs, alloc.Release(own))
	return errors.Join(errs...)
}

func cmdDel(args *skel.CmdArgs) error {
	conf, err := ParseNetConf(args.StdinData)
	if err != nil {
		return types.NewError(types.ErrDecodingFailure, "bad network config", err.Error())
	}
	alloc, err := ipam.New(conf.StateDir, conf.podCIDR)
	if err != nil {
		return types.NewError(errIPAM, "ipam", err.Error())
	}
	// DEL must succeed even when the daemon (and its pins) are gone.
	dp, err := bpf.Open(conf.BPFRoot, conf.mode)
	if err != nil {
		dp = nil
	} else {
		defer dp.Close()
	}
	if err := undo(dp, alloc, owner(args), HostVethName(args.ContainerID, args.IfName)); err != nil {
		return fmt.Errorf("DEL %s/%s: %w", args.ContainerID, args.IfName, err)
	}
	return nil
}

func cmdCheck(args *skel.CmdArgs) error {
	conf, err := ParseNetConf(args.StdinData)
	if err != nil {
		return types.NewError(types.ErrDecodingFailure, "bad network config", err.Error())
	}
	if err := version.ParsePrevResult(&conf.NetConf); err != nil {
		return types.NewError(types.ErrDecodingFailure, "bad prevResult", err.Error())
	}
	if conf.PrevResult == nil {
		return types.NewError(types.ErrInvalidNetworkConfig, "CHECK needs a prevResult", "")
	}
	prev, err := types100.NewResultFromResult(conf.PrevResult)
	if err != nil {
		return types.NewError(types.ErrDecodingFailure, "bad prevResult", err.Error())
	}
	alloc, err := ipam.New(conf.StateDir, conf.podCIDR)
	if err != nil {
		return types.NewError(errIPAM, "ipam", err.Error())
	}
	ip, ok, err := alloc.Lookup(owner(args))
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("CHECK: no address allocated for %s/%s", args.ContainerID, args.IfName)
	}
	if len(prev.IPs) != 1 || prev.IPs[0].Address.IP.String() != ip.String() {
		return fmt.Errorf("CHECK: prevResult addresses %v, allocated %s", prev.IPs, ip)
	}
	hostIf := HostVethName(args.ContainerID, args.IfName)
	host, err := netlink.LinkByName(hostIf)
	if err != nil {
		return fmt.Errorf("CHECK: host veth %s: %w", hostIf, err)
	}
	if host.Attrs().OperState != netlink.OperUp {
		return fmt.Errorf("CHECK: host veth %s is %s", hostIf, host.Attrs().OperState)
	}
	dp, err := bpf.Open(conf.BPFRoot, conf.mode)
	if err != nil {
		return types.NewError(types.ErrTryAgainLater, "eBPF datapath not loaded", err.Error())
	}
	defer dp.Close()
	ep, found, err := dp.Endpoint(ip)
	if err != nil {
		return err
	}
	if !found || ep.Ifindex != host.Attrs().Index {
		return fmt.Errorf("CHECK: datapath endpoint for %s is %+v (found %v), want ifindex %d", ip, ep, found, host.Attrs().Index)
	}
	podNS, err := netns.GetFromPath(args.Netns)
	if err != nil {
		return types.NewError(types.ErrInvalidNetNS, "cannot open the pod's network namespace", err.Error())
	}
	defer podNS.Close()
	inPod, err := netlink.NewHandleAt(podNS)
	if err != nil {
		return fmt.Errorf("CHECK: netlink in pod netns: %w", err)
	}
	defer inPod.Close()
	pod, err := inPod.LinkByName(args.IfName)
	if err != nil {
		return fmt.Errorf("CHECK: %s in pod: %w", args.IfName, err)
	}
	if pod.Attrs().HardwareAddr.String() != ep.PodMAC.String() {
		return fmt.Errorf("CHECK: %s MAC %s, datapath has %s", args.IfName, pod.Attrs().HardwareAddr, ep.PodMAC)
	}
	addrs, err := inPod.AddrList(pod, unix.AF_INET)
	if err != nil {
		return fmt.Errorf("CHECK: addresses of %s: %w", args.IfName, err)
	}
	for _, a := range addrs {
		if a.IP.Equal(ip.AsSlice()) {
			return nil
		}
	}
	return fmt.Errorf("CHECK: %s in pod lacks %s", args.IfName, ip)
}
