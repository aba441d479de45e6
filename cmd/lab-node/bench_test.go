//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/labctl/lab/bpf"
	"github.com/labctl/lab/bpf/bpftest"
	"github.com/labctl/lab/internal/syncbuf"
	"github.com/vishvananda/netlink"
)

// BenchmarkPodToPod compares the eBPF datapath with the plain kernel path
// (the same veths and routes, programs detached) on the same emulated
// nodes and pods: TCP request/response latency (ns/op is one round trip),
// TCP stream throughput (MB/s), and iperf3 (Gbit/s).
//
//	go test -run '^$' -bench PodToPod ./cmd/lab-node
func BenchmarkPodToPod(b *testing.B) {
	bpftest.Require(b, "iptables", "iptables-restore", "ping", "iperf3")
	a, bn := twoNodes(b, "auto")
	a1, a2, b1 := addPod(b, a, "a1"), addPod(b, a, "a2"), addPod(b, bn, "b1")
	pairs := []struct {
		name     string
		from, to *emuPod
	}{
		{"same-node", a1, a2},
		{"cross-node", a1, b1},
	}
	nodes := []*emuNode{a, bn}
	for _, pair := range pairs {
		for _, test := range []struct {
			name string
			run  func(*testing.B, *emuPod, *emuPod)
		}{{"tcp-rr", tcpRR}, {"tcp-stream", tcpStream}, {"iperf3", iperf3}} {
			// Alternate the two paths so that neither always runs first.
			for _, path := range []string{"ebpf", "kernel"} {
				setPath(b, nodes, path == "ebpf")
				b.Run(pair.name+"/"+test.name+"/"+path, func(b *testing.B) { test.run(b, pair.from, pair.to) })
			}
		}
	}
	setPath(b, nodes, true)
}

// setPath attaches (ebpf) or detaches (kernel) the programs on every lab
// veth and uplink of the nodes.
func setPath(b *testing.B, nodes []*emuNode, ebpf bool) {
	b.Helper()
	for _, n := range nodes {
		err := bpftest.Do(n.ns, func() error {
			dp, err := bpf.Open(n.bpfRoot, bpf.AttachAuto)
			if err != nil {
				return err
			}
			defer dp.Close()
			links, err := netlink.LinkList()
			if err != nil {
				return err
			}
			for _, l := range links {
				iface := bpf.Interface{Name: l.Attrs().Name, Index: l.Attrs().Index}
				isPod, isUplink := strings.HasPrefix(iface.Name, "lab"), iface.Name == "lan0"
				switch {
				case !ebpf && (isPod || isUplink):
					err = dp.Detach(iface)
				case ebpf && isPod:
					err = dp.AttachPod(iface)
				case ebpf && isUplink:
					err = dp.AttachUplink(iface)
				}
				if err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatalf("node %s: %v", n.name, err)
		}
	}
}

func listen(b *testing.B, p *emuPod, port uint16) net.Listener {
	b.Helper()
	var ln net.Listener
	if err := bpftest.Do(p.ns, func() (err error) {
		ln, err = net.Listen("tcp4", netip.AddrPortFrom(p.ip, port).String())
		return err
	}); err != nil {
		b.Fatal(err)
	}
	return ln
}

func dial(b *testing.B, from *emuPod, to netip.AddrPort) net.Conn {
	b.Helper()
	var c net.Conn
	if err := bpftest.Do(from.ns, func() (err error) {
		c, err = net.DialTimeout("tcp4", to.String(), 10*time.Second)
		return err
	}); err != nil {
		b.Fatal(err)
	}
	return c
}

// tcpRR: one byte there and back per op.
func tcpRR(b *testing.B, from, to *emuPod) {
	ln := listen(b, to, 9001)
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 1)
		for {
			if _, err := c.Read(buf); err != nil {
				return
			}
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	}()
	c := dial(b, from, netip.AddrPortFrom(to.ip, 9001))
	defer c.Close()
	buf := make([]byte, 1)
	b.ResetTimer()
	for range b.N {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
	}
}

// tcpStream: 128 KiB per op, from one pod to the other.
func tcpStream(b *testing.B, from, to *emuPod) {
	const chunk = 128 << 10
	ln := listen(b, to, 9002)
	defer ln.Close()
	received := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			received <- -1
			return
		}
		defer c.Close()
		n, _ := io.Copy(io.Discard, c)
		received <- n
	}()
	c := dial(b, from, netip.AddrPortFrom(to.ip, 9002))
	buf := make([]byte, chunk)
	b.SetBytes(chunk)
	b.ResetTimer()
	for range b.N {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	c.(*net.TCPConn).CloseWrite()
	if n := <-received; n != int64(b.N)*chunk {
		b.Fatalf("received %d bytes, sent %d", n, int64(b.N)*chunk)
	}
	b.StopTimer()
	c.Close()
}

// iperf3: a 3-second iperf3 TCP test per op; reports the receiver's rate.
func iperf3(b *testing.B, from, to *emuPod) {
	server := exec.Command("ip", "netns", "exec", to.ns, "iperf3", "-s", "--forceflush", "-B", to.ip.String(), "-p", "5201")
	var out syncbuf.Buffer
	server.Stdout, server.Stderr = &out, &out
	if err := server.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		server.Process.Signal(syscall.SIGTERM)
		server.Wait()
	}()
	waitFor(b, "iperf3 server", 10*time.Second, func() bool { return strings.Contains(out.String(), "Server listening") })
	var total float64
	b.ResetTimer()
	for range b.N {
		res, err := bpftest.Exec(from.ns, "iperf3", "-c", to.ip.String(), "-p", "5201", "-t", "3", "-J")
		if err != nil {
			b.Fatalf("iperf3: %v\n%s", err, res)
		}
		var r struct {
			End struct {
				SumReceived struct {
					BitsPerSecond float64 `json:"bits_per_second"`
				} `json:"sum_received"`
			} `json:"end"`
		}
		if err := json.NewDecoder(bytes.NewReader([]byte(res))).Decode(&r); err != nil {
			b.Fatalf("iperf3 output: %v", err)
		}
		total += r.End.SumReceived.BitsPerSecond
	}
	b.ReportMetric(total/float64(b.N)/1e9, "Gbit/s")
}
