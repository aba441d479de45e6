//go:build linux

// Package bpf owns lab's eBPF pod datapath: the C programs in datapath.c,
// their bpf2go output, and a small API to load and pin them, attach them to
// pod veths and the node's uplink, and read and write their maps.
//
// Everything lives under one bpffs directory (by default /sys/fs/bpf/lab),
// so that the lab-node daemon, which loads the programs, and the short-lived
// CNI plugin processes, which attach them and add endpoints, share them:
//
//	ROOT/maps/endpoints, endpoint_counters, remote_cidrs
//	ROOT/progs/from_pod, to_pod, from_uplink
//	ROOT/links/ingress/IFNAME, links/egress/IFNAME   (TCX links)
package bpf

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
)

// DefaultRoot is where lab-node pins the datapath on a node.
const DefaultRoot = "/sys/fs/bpf/lab"

// Endpoint is a pod on this node as the datapath sees it.
type Endpoint struct {
	// Ifindex is the host-side veth in the node's network namespace.
	Ifindex int
	// PodMAC is the MAC of the pod's own interface (eth0).
	PodMAC net.HardwareAddr
	// HostMAC is the MAC of the host-side veth, the pod's gateway.
	HostMAC net.HardwareAddr
}

// Counters are an endpoint's packets and bytes, summed over all CPUs. Rx is
// towards the pod, Tx from it.
type Counters struct {
	RxPackets, RxBytes, TxPackets, TxBytes uint64
}

// Datapath is a handle on the pinned programs and maps. Close it when done;
// the pins keep the datapath alive after the process exits.
type Datapath struct {
	root string
	mode AttachMode

	endpoints, counters, remoteCIDRs *ebpf.Map
	fromPod, toPod, fromUplink       *ebpf.Program
}

// cidrKey mirrors struct cidr_key: an LPM trie key in network byte order.
type cidrKey struct {
	Prefixlen uint32
	Addr      [4]byte
}

// Load loads the programs into the kernel and pins them under root,
// reusing maps already pinned there (so endpoints survive a daemon restart)
// and moving already attached TCX links to the new programs. root must be
// on a bpffs.
func Load(root string, mode AttachMode) (*Datapath, error) {
	for _, dir := range []string{"maps", "progs", "links/ingress", "links/egress"} {
		if err := os.MkdirAll(filepath.Join(root, dir), 0o700); err != nil {
			return nil, fmt.Errorf("load datapath: %w", err)
		}
	}
	var objs datapathObjects
	err := loadDatapathObjects(&objs, &ebpf.CollectionOptions{
		Maps: ebpf.MapOptions{PinPath: filepath.Join(root, "maps")},
	})
	if err != nil {
		return nil, fmt.Errorf("load datapath into the kernel: %w", err)
	}
	d := &Datapath{
		root: root, mode: mode,
		endpoints: objs.Endpoints, counters: objs.EndpointCounters, remoteCIDRs: objs.RemoteCidrs,
		fromPod: objs.FromPod, toPod: objs.ToPod, fromUplink: objs.FromUplink,
	}
	for name, prog := range d.programs() {
		if err := replacePin(prog, filepath.Join(root, "progs", name)); err != nil {
			d.Close()
			return nil, err
		}
	}
	if err := d.upgradeLinks(); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// Open opens a datapath that Load pinned under root, as the CNI plugin does.
func Open(root string, mode AttachMode) (*Datapath, error) {
	d := &Datapath{root: root, mode: mode}
	var err error
	open := func(m **ebpf.Map, name string) {
		if err == nil {
			*m, err = ebpf.LoadPinnedMap(filepath.Join(root, "maps", name), nil)
		}
	}
	openProg := func(p **ebpf.Program, name string) {
		if err == nil {
			*p, err = ebpf.LoadPinnedProgram(filepath.Join(root, "progs", name), nil)
		}
	}
	open(&d.endpoints, datapathMapEndpoints)
	open(&d.counters, datapathMapEndpointCounters)
	open(&d.remoteCIDRs, datapathMapRemoteCidrs)
	openProg(&d.fromPod, datapathProgFromPod)
	openProg(&d.toPod, datapathProgToPod)
	openProg(&d.fromUplink, datapathProgFromUplink)
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("open datapath pinned at %s (is the lab-node daemon running?): %w", root, err)
	}
	return d, nil
}

// Root is the bpffs directory the datapath is pinned under.
func (d *Datapath) Root() string { return d.root }

// Close releases this process's handles; pinned objects stay.
func (d *Datapath) Close() error {
	var errs []error
	for _, m := range []*ebpf.Map{d.endpoints, d.counters, d.remoteCIDRs} {
		if m != nil {
			errs = append(errs, m.Close())
		}
	}
	for _, p := range []*ebpf.Program{d.fromPod, d.toPod, d.fromUplink} {
		if p != nil {
			errs = append(errs, p.Close())
		}
	}
	return errors.Join(errs...)
}

// Unpin removes the whole pin directory: programs, maps and TCX links (which
// detaches them). Used by `lab-node reset` and tests.
func (d *Datapath) Unpin() error {
	if err := os.RemoveAll(d.root); err != nil {
		return fmt.Errorf("unpin datapath: %w", err)
	}
	return nil
}

func (d *Datapath) programs() map[string]*ebpf.Program {
	return map[string]*ebpf.Program{
		datapathProgFromPod:    d.fromPod,
		datapathProgToPod:      d.toPod,
		datapathProgFromUplink: d.fromUplink,
	}
}

// replacePin pins prog at path, atomically replacing an older pin, so that a
// plugin opening the path never finds it missing.
func replacePin(prog *ebpf.Program, path string) error {
	tmp := path + "_new" // bpffs names may not have dots
	_ = os.Remove(tmp)
	if err := prog.Pin(tmp); err != nil {
		return fmt.Errorf("pin %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("pin %s: %w", path, err)
	}
	return nil
}

// AddEndpoint makes ip a local pod: traffic for it is delivered to ep, and
// its counters start from zero.
func (d *Datapath) AddEndpoint(ip netip.Addr, ep Endpoint) error {
	key, err := ipKey(ip)
	if err != nil {
		return err
	}
	if len(ep.PodMAC) != 6 || len(ep.HostMAC) != 6 {
		return fmt.Errorf("endpoint %s: MACs must be 6 bytes", ip)
	}
	zero := make([]datapathCounters, ebpf.MustPossibleCPU())
	if err := d.counters.Put(key, zero); err != nil {
		return fmt.Errorf("endpoint %s: counters: %w", ip, err)
	}
	v := datapathEndpoint{Ifindex: uint32(ep.Ifindex)}
	copy(v.PodMac[:], ep.PodMAC)
	copy(v.HostMac[:], ep.HostMAC)
	if err := d.endpoints.Put(key, v); err != nil {
		return fmt.Errorf("endpoint %s: %w", ip, err)
	}
	return nil
}

// DeleteEndpoint forgets ip; deleting an unknown endpoint is not an error.
func (d *Datapath) DeleteEndpoint(ip netip.Addr) error {
	key, err := ipKey(ip)
	if err != nil {
		return err
	}
	for _, m := range []*ebpf.Map{d.endpoints, d.counters} {
		if err := m.Delete(key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("delete endpoint %s: %w", ip, err)
		}
	}
	return nil
}

// Endpoint returns the endpoint for ip; ok is false when there is none.
func (d *Datapath) Endpoint(ip netip.Addr) (ep Endpoint, ok bool, err error) {
	key, err := ipKey(ip)
	if err != nil {
		return Endpoint{}, false, err
	}
	var v datapathEndpoint
	if err := d.endpoints.Lookup(key, &v); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return Endpoint{}, false, nil
		}
		return Endpoint{}, false, fmt.Errorf("endpoint %s: %w", ip, err)
	}
	return toEndpoint(v), true, nil
}

// Endpoints lists every local pod.
func (d *Datapath) Endpoints() (map[netip.Addr]Endpoint, error) {
	out := make(map[netip.Addr]Endpoint)
	var (
		key [4]byte
		v   datapathEndpoint
	)
	it := d.endpoints.Iterate()
	for it.Next(&key, &v) {
		out[netip.AddrFrom4(key)] = toEndpoint(v)
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("list endpoints: %w", err)
	}
	return out, nil
}

// Counters returns every endpoint's counters, summed over the CPUs.
func (d *Datapath) Counters() (map[netip.Addr]Counters, error) {
	out := make(map[netip.Addr]Counters)
	var (
		key    [4]byte
		perCPU []datapathCounters
	)
	it := d.counters.Iterate()
	for it.Next(&key, &perCPU) {
		var c Counters
		for _, p := range perCPU {
			c.RxPackets += p.RxPackets
			c.RxBytes += p.RxBytes
			c.TxPackets += p.TxPackets
			c.TxBytes += p.TxBytes
		}
		out[netip.AddrFrom4(key)] = c
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read counters: %w", err)
	}
	return out, nil
}

// SetRemoteCIDRs makes the trie of other nodes' pod CIDRs equal to cidrs
// (pod CIDR -> that node's IP): missing ones are added, stale ones removed.
func (d *Datapath) SetRemoteCIDRs(cidrs map[netip.Prefix]netip.Addr) error {
	want := make(map[cidrKey][4]byte, len(cidrs))
	for p, node := range cidrs {
		if !p.Addr().Is4() || !node.Is4() {
			return fmt.Errorf("remote pod CIDR %s via %s: only IPv4 is supported", p, node)
		}
		p = p.Masked()
		want[cidrKey{Prefixlen: uint32(p.Bits()), Addr: p.Addr().As4()}] = node.As4()
	}
	var (
		key   cidrKey
		val   [4]byte
		stale []cidrKey
	)
	it := d.remoteCIDRs.Iterate()
	for it.Next(&key, &val) {
		if _, ok := want[key]; !ok {
			stale = append(stale, key)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("list remote pod CIDRs: %w", err)
	}
	for _, k := range stale {
		if err := d.remoteCIDRs.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("delete remote pod CIDR: %w", err)
		}
	}
	for k, v := range want {
		if err := d.remoteCIDRs.Put(k, v); err != nil {
			return fmt.Errorf("add remote pod CIDR: %w", err)
		}
	}
	return nil
}

// RemoteCIDRs lists the trie: pod CIDR -> node IP.
func (d *Datapath) RemoteCIDRs() (map[netip.Prefix]netip.Addr, error) {
	out := make(map[netip.Prefix]netip.Addr)
	var (
		key cidrKey
		val [4]byte
	)
	it := d.remoteCIDRs.Iterate()
	for it.Next(&key, &val) {
		out[netip.PrefixFrom(netip.AddrFrom4(key.Addr), int(key.Prefixlen))] = netip.AddrFrom4(val)
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("list remote pod CIDRs: %w", err)
	}
	return out, nil
}

func ipKey(ip netip.Addr) ([4]byte, error) {
	if !ip.Is4() {
		return [4]byte{}, fmt.Errorf("endpoint %s: only IPv4 is supported", ip)
	}
	return ip.As4(), nil
}

func toEndpoint(v datapathEndpoint) Endpoint {
	return Endpoint{
		Ifindex: int(v.Ifindex),
		PodMAC:  net.HardwareAddr(append([]byte(nil), v.PodMac[:]...)),
		HostMAC: net.HardwareAddr(append([]byte(nil), v.HostMac[:]...)),
	}
}
