//go:build linux

package bpf

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/labctl/lab/bpf/bpftest"
	"github.com/vishvananda/netlink"
)

// TC verdicts as the programs return them.
const (
	actOK       = 0
	actShot     = 2
	actRedirect = 7
)

// skbCtx is the head of struct __sk_buff, as BPF_PROG_RUN accepts it:
// only ingress_ifindex and ifindex may be set here.
type skbCtx struct {
	Len, PktType, Mark, QueueMapping, Protocol, VlanPresent, VlanTCI, VlanProto uint32
	Priority, IngressIfindex, Ifindex                                           uint32
}

var (
	podA    = netip.MustParseAddr("10.244.1.10")
	podB    = netip.MustParseAddr("10.244.1.11")
	remote  = netip.MustParseAddr("10.245.0.7") // pod on a node whose neighbour is known
	remote2 = netip.MustParseAddr("10.246.0.7") // pod on a node whose neighbour is not
	outside = netip.MustParseAddr("8.8.8.8")

	macPodA  = net.HardwareAddr{0x02, 0, 0, 0, 0xa, 1}
	macHostA = net.HardwareAddr{0x02, 0, 0, 0, 0xa, 2}
	macPodB  = net.HardwareAddr{0x02, 0, 0, 0, 0xb, 1}
	macHostB = net.HardwareAddr{0x02, 0, 0, 0, 0xb, 2}
	macGW    = net.HardwareAddr{0x02, 0, 0, 0, 0x99, 0x99}
)

// ipv4Packet builds Ethernet + IPv4 + 16 bytes of UDP-ish payload with a
// valid header checksum.
func ipv4Packet(src, dst netip.Addr, ttl uint8, dmac, smac net.HardwareAddr) []byte {
	pkt := make([]byte, 14+20+16)
	copy(pkt[0:6], dmac)
	copy(pkt[6:12], smac)
	binary.BigEndian.PutUint16(pkt[12:], 0x0800)
	ip := pkt[14:34]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], 36)
	ip[8] = ttl
	ip[9] = 17
	s, d := src.As4(), dst.As4()
	copy(ip[12:16], s[:])
	copy(ip[16:20], d[:])
	binary.BigEndian.PutUint16(ip[10:], ipChecksum(ip))
	return pkt
}

func ipChecksum(hdr []byte) uint16 {
	var sum uint32
	for i := 0; i < len(hdr); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(hdr[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

type runResult struct {
	verdict uint32
	out     []byte
}

func run(t *testing.T, prog *ebpf.Program, pkt []byte, ctx skbCtx) runResult {
	t.Helper()
	out := make([]byte, len(pkt)+64)
	opts := &ebpf.RunOptions{Data: pkt, DataOut: out, Context: ctx}
	verdict, err := prog.Run(opts)
	if err != nil {
		t.Fatalf("BPF_PROG_RUN: %v", err)
	}
	return runResult{verdict, opts.DataOut}
}

// testNode is a network namespace shaped like a node for bpf_fib_lookup:
// a fake pod veth (forwarding on), an uplink with routes to two remote pod
// CIDRs, one through a neighbour the kernel knows and one through a
// neighbour it does not.
type testNode struct {
	ns              string
	podIf, uplinkIf int
	uplinkMAC       net.HardwareAddr
}

func newTestNode(t *testing.T) testNode {
	ns := bpftest.Netns(t, "prog")
	ip := func(args ...string) { bpftest.IP(t, append([]string{"-n", ns}, args...)...) }
	ip("link", "add", "hv0", "type", "veth", "peer", "name", "hv1")
	ip("link", "add", "up0", "type", "veth", "peer", "name", "up1")
	for _, l := range []string{"hv0", "hv1", "up0", "up1"} {
		ip("link", "set", l, "up")
	}
	ip("addr", "add", "192.0.2.1/24", "dev", "up0")
	ip("route", "add", "10.245.0.0/24", "via", "192.0.2.2")
	ip("route", "add", "10.246.0.0/24", "via", "192.0.2.3")
	ip("neigh", "replace", "192.0.2.2", "lladdr", macGW.String(), "dev", "up0", "nud", "permanent")
	if out, err := bpftest.Exec(ns, "sysctl", "-qw", "net.ipv4.ip_forward=1"); err != nil {
		t.Fatalf("sysctl: %v: %s", err, out)
	}
	n := testNode{ns: ns}
	err := bpftest.Do(ns, func() error {
		hv, err := netlink.LinkByName("hv0")
		if err != nil {
			return err
		}
		up, err := netlink.LinkByName("up0")
		if err != nil {
			return err
		}
		n.podIf, n.uplinkIf, n.uplinkMAC = hv.Attrs().Index, up.Attrs().Index, up.Attrs().HardwareAddr
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func loadForTest(t *testing.T) *Datapath {
	t.Helper()
	bpftest.Require(t)
	d, err := Load(bpftest.BPFFS(t), AttachAuto)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestProgramsWithProgRun(t *testing.T) {
	d := loadForTest(t)
	node := newTestNode(t)

	const podBIf = 4242 // any ifindex: redirects are not carried out by PROG_RUN
	mustAdd := func(ip netip.Addr, ep Endpoint) {
		if err := d.AddEndpoint(ip, ep); err != nil {
			t.Fatal(err)
		}
	}
	mustAdd(podA, Endpoint{Ifindex: node.podIf, PodMAC: macPodA, HostMAC: macHostA})
	mustAdd(podB, Endpoint{Ifindex: podBIf, PodMAC: macPodB, HostMAC: macHostB})
	gw := netip.MustParseAddr("192.0.2.2")
	err := d.SetRemoteCIDRs(map[netip.Prefix]netip.Addr{
		netip.MustParsePrefix("10.245.0.0/24"): gw,
		netip.MustParsePrefix("10.246.0.0/24"): netip.MustParseAddr("192.0.2.3"),
	})
	if err != nil {
		t.Fatal(err)
	}

	fromA := skbCtx{IngressIfindex: uint32(node.podIf), Ifindex: uint32(node.podIf)}
	cases := []struct {
		name    string
		prog    *ebpf.Program
		pkt     []byte
		ctx     skbCtx
		verdict uint32
		// for redirects, the expected rewritten MACs
		dmac, smac net.HardwareAddr
	}{
		{"spoofed source is dropped", d.fromPod, ipv4Packet(podB, podA, 64, macHostA, macPodA), fromA, actShot, nil, nil},
		{"source on the wrong veth is dropped", d.fromPod, ipv4Packet(podA, podB, 64, macHostA, macPodA),
			skbCtx{IngressIfindex: uint32(node.uplinkIf), Ifindex: uint32(node.uplinkIf)}, actShot, nil, nil},
		{"local pod is redirected into its peer", d.fromPod, ipv4Packet(podA, podB, 64, macHostA, macPodA), fromA, actRedirect, macPodB, macHostB},
		{"remote pod with known neighbour", d.fromPod, ipv4Packet(podA, remote, 64, macHostA, macPodA), fromA, actRedirect, macGW, node.uplinkMAC},
		{"remote pod with unresolved neighbour", d.fromPod, ipv4Packet(podA, remote2, 64, macHostA, macPodA), fromA, actRedirect, macHostA, macPodA},
		{"outside goes to the host stack", d.fromPod, ipv4Packet(podA, outside, 64, macHostA, macPodA), fromA, actOK, nil, nil},
		{"expiring TTL goes to the host stack", d.fromPod, ipv4Packet(podA, podB, 1, macHostA, macPodA), fromA, actOK, nil, nil},
		{"uplink delivers to a local pod", d.fromUplink, ipv4Packet(remote, podB, 63, macHostA, macGW),
			skbCtx{IngressIfindex: uint32(node.uplinkIf), Ifindex: uint32(node.uplinkIf)}, actRedirect, macPodB, macHostB},
		{"uplink passes the rest", d.fromUplink, ipv4Packet(remote, outside, 63, macHostA, macGW),
			skbCtx{IngressIfindex: uint32(node.uplinkIf), Ifindex: uint32(node.uplinkIf)}, actOK, nil, nil},
		{"to_pod only counts", d.toPod, ipv4Packet(outside, podA, 60, macPodA, macHostA), skbCtx{Ifindex: uint32(node.podIf)}, actOK, nil, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var res runResult
			if err := bpftest.Do(node.ns, func() error { res = run(t, c.prog, c.pkt, c.ctx); return nil }); err != nil {
				t.Fatal(err)
			}
			if res.verdict != c.verdict {
				t.Fatalf("verdict %d, want %d", res.verdict, c.verdict)
			}
			if c.verdict != actRedirect {
				if c.verdict == actOK && !bytes.Equal(res.out, c.pkt) {
					t.Errorf("packet passed to the stack was changed:\n got %x\nwant %x", res.out, c.pkt)
				}
				return
			}
			if got := net.HardwareAddr(res.out[0:6]); got.String() != c.dmac.String() {
				t.Errorf("destination MAC %s, want %s", got, c.dmac)
			}
			if got := net.HardwareAddr(res.out[6:12]); got.String() != c.smac.String() {
				t.Errorf("source MAC %s, want %s", got, c.smac)
			}
			ip := res.out[14:34]
			if ip[8] != c.pkt[14+8]-1 {
				t.Errorf("TTL %d, want %d", ip[8], c.pkt[14+8]-1)
			}
			if ipChecksum(ip) != 0 {
				t.Errorf("IPv4 header checksum is wrong after forwarding: %x", ip)
			}
		})
	}

	counters, err := d.Counters()
	if err != nil {
		t.Fatal(err)
	}
	// podA sent 5 packets that passed the source check (local, 2 remote,
	// outside, TTL 1) and received the to_pod packet; podB received the
	// local packet and the uplink one.
	if got := counters[podA]; got.TxPackets != 5 || got.RxPackets != 1 || got.TxBytes != 5*50 || got.RxBytes != 50 {
		t.Errorf("podA counters %+v, want tx 5/250 rx 1/50", got)
	}
	if got := counters[podB]; got.RxPackets != 2 || got.TxPackets != 0 {
		t.Errorf("podB counters %+v, want rx 2 tx 0", got)
	}
}

func TestEndpointsAndRemoteCIDRs(t *testing.T) {
	d := loadForTest(t)
	ep := Endpoint{Ifindex: 7, PodMAC: macPodA, HostMAC: macHostA}
	if err := d.AddEndpoint(podA, ep); err != nil {
		t.Fatal(err)
	}
	got, ok, err := d.Endpoint(podA)
	if err != nil || !ok || got.Ifindex != 7 || got.PodMAC.String() != macPodA.String() || got.HostMAC.String() != macHostA.String() {
		t.Fatalf("Endpoint(%s) = %+v, %v, %v", podA, got, ok, err)
	}
	if err := d.DeleteEndpoint(podA); err != nil {
		t.Fatal(err)
	}
	if err := d.DeleteEndpoint(podA); err != nil {
		t.Fatalf("second delete: %v", err)
	}
	if eps, _ := d.Endpoints(); len(eps) != 0 {
		t.Fatalf("endpoints left: %v", eps)
	}
	if c, _ := d.Counters(); len(c) != 0 {
		t.Fatalf("counters left: %v", c)
	}

	n1, n2 := netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("192.0.2.3")
	if err := d.SetRemoteCIDRs(map[netip.Prefix]netip.Addr{
		netip.MustParsePrefix("10.245.0.0/24"): n1,
		netip.MustParsePrefix("10.246.0.0/24"): n2,
	}); err != nil {
		t.Fatal(err)
	}
	want := map[netip.Prefix]netip.Addr{netip.MustParsePrefix("10.246.0.0/24"): n1}
	if err := d.SetRemoteCIDRs(want); err != nil {
		t.Fatal(err)
	}
	have, err := d.RemoteCIDRs()
	if err != nil {
		t.Fatal(err)
	}
	if len(have) != 1 || have[netip.MustParsePrefix("10.246.0.0/24")] != n1 {
		t.Fatalf("remote CIDRs %v, want %v", have, want)
	}
}

// A second Load (a restarted or upgraded daemon) keeps the pinned maps and
// what is in them, and Open sees the same maps.
func TestReloadKeepsMaps(t *testing.T) {
	d := loadForTest(t)
	if err := d.AddEndpoint(podA, Endpoint{Ifindex: 3, PodMAC: macPodA, HostMAC: macHostA}); err != nil {
		t.Fatal(err)
	}
	d2, err := Load(d.Root(), AttachAuto)
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	d3, err := Open(d.Root(), AttachAuto)
	if err != nil {
		t.Fatal(err)
	}
	defer d3.Close()
	for _, dp := range []*Datapath{d2, d3} {
		if _, ok, err := dp.Endpoint(podA); err != nil || !ok {
			t.Fatalf("endpoint lost across reload: ok=%v err=%v", ok, err)
		}
	}
	if _, err := Open(t.TempDir(), AttachAuto); err == nil {
		t.Fatal("Open of an empty directory succeeded")
	}
}
