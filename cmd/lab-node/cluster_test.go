//go:build linux

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/labctl/lab/bpf/bpftest"
	"github.com/labctl/lab/cmd/lab-node/internal/cniplugin"
	"github.com/labctl/lab/cmd/lab-node/internal/daemon"
	"github.com/labctl/lab/internal/syncbuf"
	"github.com/vishvananda/netlink"
)

// labNode is the lab-node binary under test, built once by TestMain.
var labNode string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "lab-node-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	labNode = filepath.Join(dir, "lab-node")
	if out, err := exec.Command("go", "build", "-o", labNode, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build lab-node: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// emulated node: a network namespace with an uplink, its own bpffs, CNI
// directories and IPAM state, and a running `lab-node daemon`.
type emuNode struct {
	name       string
	ns         string
	ip         netip.Addr
	podCIDR    netip.Prefix
	bpfRoot    string
	confDir    string
	binDir     string
	stateDir   string
	nodesFile  string
	daemonLogs *syncbuf.Buffer
	// stopDaemon stops the daemon (SIGTERM) and reports how it ended.
	stopDaemon func()
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// twoNodes builds nodes "a" (10.99.0.1, pods 10.244.1.0/24) and "b"
// (10.99.0.2, pods 10.244.2.0/24) joined by a veth "lan0", each running the
// daemon with a node list file shared by both.
func twoNodes(t testing.TB, attachMode string) (a, b *emuNode) {
	bpftest.Require(t, "iptables", "iptables-restore", "ping")
	nodesFile := filepath.Join(t.TempDir(), "nodes.json")
	a = newEmuNode(t, "a", "10.99.0.1", "10.244.1.0/24", nodesFile)
	b = newEmuNode(t, "b", "10.99.0.2", "10.244.2.0/24", nodesFile)
	bpftest.IP(t, "link", "add", "lan0", "netns", a.ns, "type", "veth", "peer", "name", "lan0", "netns", b.ns)
	for _, n := range []*emuNode{a, b} {
		bpftest.IP(t, "-n", n.ns, "addr", "add", n.ip.String()+"/24", "dev", "lan0")
		bpftest.IP(t, "-n", n.ns, "link", "set", "lan0", "up")
	}
	writeNodes(t, nodesFile, a, b)
	for _, n := range []*emuNode{a, b} {
		n.startDaemon(t, attachMode)
	}
	for _, n := range []*emuNode{a, b} {
		n.waitReady(t)
	}
	waitRoute(t, a, b.podCIDR, true)
	waitRoute(t, b, a.podCIDR, true)
	return a, b
}

func newEmuNode(t testing.TB, name, ip, podCIDR, nodesFile string) *emuNode {
	n := &emuNode{
		name:       name,
		ns:         bpftest.Netns(t, "node"+name),
		ip:         netip.MustParseAddr(ip),
		podCIDR:    netip.MustParsePrefix(podCIDR),
		bpfRoot:    filepath.Join(bpftest.BPFFS(t), "lab"),
		confDir:    t.TempDir(),
		binDir:     t.TempDir(),
		stateDir:   t.TempDir(),
		nodesFile:  nodesFile,
		daemonLogs: &syncbuf.Buffer{},
	}
	return n
}

func writeNodes(t testing.TB, path string, nodes ...*emuNode) {
	t.Helper()
	var list []daemon.Node
	for _, n := range nodes {
		list = append(list, daemon.Node{Name: n.name, InternalIP: n.ip, PodCIDR: n.podCIDR})
	}
	b, err := json.Marshal(list)
	if err != nil {
		t.Fatal(err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func (n *emuNode) startDaemon(t testing.TB, attachMode string) {
	cmd := exec.Command("ip", "netns", "exec", n.ns, labNode, "daemon",
		"--node-name", n.name, "--nodes-file", n.nodesFile, "--bpf-root", n.bpfRoot,
		"--cni-conf-dir", n.confDir, "--cni-bin-dir", n.binDir, "--state-dir", n.stateDir,
		"--attach-mode", attachMode)
	cmd.Stdout, cmd.Stderr = n.daemonLogs, n.daemonLogs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var once sync.Once
	n.stopDaemon = func() { once.Do(func() { stopDaemon(t, n, cmd, done) }) }
	t.Cleanup(n.stopDaemon)
}

func stopDaemon(t testing.TB, n *emuNode, cmd *exec.Cmd, done chan error) {
	{
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("daemon on node %s: %v\n%s", n.name, err, n.daemonLogs)
			}
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Errorf("daemon on node %s did not stop on SIGTERM\n%s", n.name, n.daemonLogs)
		}
		if t.Failed() {
			t.Logf("daemon on node %s:\n%s", n.name, n.daemonLogs)
		}
	}
}

func (n *emuNode) waitReady(t testing.TB) {
	t.Helper()
	waitFor(t, "CNI config on node "+n.name, 20*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(n.confDir, daemon.ConfFile))
		return err == nil
	})
	if _, err := os.Stat(filepath.Join(n.binDir, cniplugin.PluginType)); err != nil {
		t.Fatalf("plugin not installed: %v", err)
	}
}

func waitRoute(t testing.TB, n *emuNode, cidr netip.Prefix, present bool) {
	t.Helper()
	waitFor(t, fmt.Sprintf("route %s on node %s present=%v", cidr, n.name, present), 20*time.Second, func() bool {
		out := bpftest.IP(t, "-n", n.ns, "route", "show", "proto", "177")
		return strings.Contains(out, cidr.String()) == present
	})
}

// netconf is the plugin's config as a runtime hands it over: the
// conflist's plugin entry with the list's name and cniVersion.
func (n *emuNode) netconf(t testing.TB) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(n.confDir, daemon.ConfFile))
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		CNIVersion string           `json:"cniVersion"`
		Name       string           `json:"name"`
		Plugins    []map[string]any `json:"plugins"`
	}
	if err := json.Unmarshal(b, &list); err != nil {
		t.Fatalf("CNI config: %v\n%s", err, b)
	}
	if len(list.Plugins) != 1 || list.Plugins[0]["type"] != cniplugin.PluginType {
		t.Fatalf("CNI config plugins: %s", b)
	}
	conf := list.Plugins[0]
	conf["name"], conf["cniVersion"] = list.Name, list.CNIVersion
	return conf
}

type emuPod struct {
	name   string
	ns     string
	id     string
	ip     netip.Addr
	node   *emuNode
	result map[string]any
}

// cni runs the installed plugin in the node's netns exactly as a runtime
// does: CNI_* variables, the config on stdin, the result on stdout.
func (n *emuNode) cni(t testing.TB, command string, p *emuPod, conf map[string]any, extraEnv ...string) ([]byte, error) {
	t.Helper()
	stdin, err := json.Marshal(conf)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", n.ns, filepath.Join(n.binDir, cniplugin.PluginType))
	cmd.Env = append([]string{
		"PATH=" + os.Getenv("PATH"),
		"CNI_COMMAND=" + command,
		"CNI_CONTAINERID=" + p.id,
		"CNI_NETNS=/run/netns/" + p.ns,
		"CNI_IFNAME=eth0",
		"CNI_PATH=" + n.binDir,
		"CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=" + p.name,
	}, extraEnv...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil && stderr.Len() > 0 {
		t.Logf("plugin %s stderr: %s", command, stderr.String())
	}
	return out, err
}

// newPod creates a pod netns; addPod also runs ADD and records the result.
func newPod(t testing.TB, n *emuNode, name string) *emuPod {
	return &emuPod{name: name, ns: bpftest.Netns(t, "pod"+name), id: bpftest.UniqueName("ctr-" + name + "-"), node: n}
}

func addPod(t testing.TB, n *emuNode, name string) *emuPod {
	t.Helper()
	p := newPod(t, n, name)
	p.add(t)
	t.Cleanup(func() {
		if out, err := n.cni(t, "DEL", p, n.netconf(t)); err != nil {
			t.Errorf("DEL %s: %v: %s", p.name, err, out)
		}
	})
	return p
}

func (p *emuPod) add(t testing.TB) {
	t.Helper()
	out, err := p.node.cni(t, "ADD", p, p.node.netconf(t))
	if err != nil {
		t.Fatalf("ADD %s: %v: %s", p.name, err, out)
	}
	var res struct {
		CNIVersion string `json:"cniVersion"`
		IPs        []struct {
			Address string `json:"address"`
		} `json:"ips"`
	}
	if err := json.Unmarshal(out, &res); err != nil || len(res.IPs) != 1 || res.CNIVersion != "1.0.0" {
		t.Fatalf("ADD %s result: %v: %s", p.name, err, out)
	}
	pfx, err := netip.ParsePrefix(res.IPs[0].Address)
	if err != nil || !p.node.podCIDR.Contains(pfx.Addr()) {
		t.Fatalf("ADD %s: address %q not in %s", p.name, res.IPs[0].Address, p.node.podCIDR)
	}
	p.ip = pfx.Addr()
	json.Unmarshal(out, &p.result)
}

func ping(t testing.TB, from *emuPod, to netip.Addr) {
	t.Helper()
	out, err := bpftest.Exec(from.ns, "ping", "-c", "3", "-i", "0.2", "-w", "10", to.String())
	if err != nil {
		t.Fatalf("ping %s -> %s: %v\n%s", from.name, to, err, out)
	}
}

// tcpEcho listens in ns, dials from fromNS, sends a message and checks the
// echo; it returns the client address the server saw.
func tcpEcho(t testing.TB, serverNS string, addr netip.AddrPort, fromNS string) netip.AddrPort {
	t.Helper()
	var ln net.Listener
	if err := bpftest.Do(serverNS, func() (err error) {
		ln, err = net.Listen("tcp4", addr.String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	seen := make(chan netip.AddrPort, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(seen)
			return
		}
		defer c.Close()
		seen <- c.RemoteAddr().(*net.TCPAddr).AddrPort()
		io.Copy(c, c)
	}()
	var conn net.Conn
	if err := bpftest.Do(fromNS, func() (err error) {
		conn, err = net.DialTimeout("tcp4", addr.String(), 10*time.Second)
		return err
	}); err != nil {
		t.Fatalf("dial %s from %s: %v", addr, fromNS, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	msg := bytes.Repeat([]byte("lab pod network "), 4096) // 64 KiB: many segments
	go conn.Write(msg)
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(conn, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo through %s: %v", addr, err)
	}
	return netip.AddrPortFrom((<-seen).Addr().Unmap(), 0)
}

type podStats struct {
	IP        string `json:"ip"`
	Pod       string `json:"pod"`
	RxPackets uint64
	TxPackets uint64
	RxBytes   uint64
	TxBytes   uint64
}

func (n *emuNode) stats(t testing.TB) map[string]podStats {
	t.Helper()
	out, err := bpftest.Exec(n.ns, labNode, "stats", "--json", "--bpf-root", n.bpfRoot, "--state-dir", n.stateDir)
	if err != nil {
		t.Fatalf("lab-node stats: %v\n%s", err, out)
	}
	var list []podStats
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("lab-node stats: %v\n%s", err, out)
	}
	m := make(map[string]podStats)
	for _, s := range list {
		m[s.IP] = s
	}
	return m
}

// forwardCounter counts, in the node's FORWARD chain, packets between two
// addresses: the eBPF fast path bypasses it, the kernel path does not.
func forwardCounter(t testing.TB, n *emuNode, src, dst netip.Addr) func() int {
	rule := []string{"FORWARD", "-s", src.String(), "-d", dst.String(), "-m", "comment", "--comment", "lab-test"}
	if out, err := bpftest.Exec(n.ns, "iptables", append([]string{"-w", "-I"}, rule...)...); err != nil {
		t.Fatalf("iptables: %v: %s", err, out)
	}
	return func() int {
		out, err := bpftest.Exec(n.ns, "iptables", "-w", "-n", "-v", "-x", "-L", "FORWARD")
		if err != nil {
			t.Fatalf("iptables -L: %v: %s", err, out)
		}
		sc := bufio.NewScanner(strings.NewReader(out))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if strings.Contains(sc.Text(), "lab-test") && len(f) > 0 && strings.Contains(sc.Text(), src.String()) && strings.Contains(sc.Text(), dst.String()) {
				v, _ := strconv.Atoi(f[0])
				return v
			}
		}
		t.Fatalf("counting rule not found:\n%s", out)
		return 0
	}
}

func TestPodNetwork(t *testing.T) {
	for _, mode := range []string{"tcx", "clsact"} {
		t.Run(mode, func(t *testing.T) { testPodNetwork(t, mode) })
	}
}

func testPodNetwork(t *testing.T, attachMode string) {
	a, b := twoNodes(t, attachMode)
	a1, a2, b1 := addPod(t, a, "a1"), addPod(t, a, "a2"), addPod(t, b, "b1")

	sameNode := forwardCounter(t, a, a1.ip, a2.ip)
	crossNode := forwardCounter(t, a, a1.ip, b1.ip)
	crossNodeIn := forwardCounter(t, b, a1.ip, b1.ip)

	t.Run("ping", func(t *testing.T) {
		ping(t, a1, a2.ip) // same node
		ping(t, a1, b1.ip) // across nodes
		ping(t, b1, a2.ip) // across nodes, the other way
		ping(t, a1, a.ip)  // pod to its host
		ping(t, a1, b.ip)  // pod to another host (masqueraded)
	})
	t.Run("tcp", func(t *testing.T) {
		if got := tcpEcho(t, a2.ns, netip.AddrPortFrom(a2.ip, 8080), a1.ns); got.Addr() != a1.ip {
			t.Errorf("same node: server saw %s, want the pod's own address %s", got.Addr(), a1.ip)
		}
		if got := tcpEcho(t, b1.ns, netip.AddrPortFrom(b1.ip, 8080), a1.ns); got.Addr() != a1.ip {
			t.Errorf("across nodes: server saw %s, want the pod's own address %s (no NAT between pods)", got.Addr(), a1.ip)
		}
		if got := tcpEcho(t, b.ns, netip.AddrPortFrom(b.ip, 8081), a1.ns); got.Addr() != a.ip {
			t.Errorf("pod to another host: server saw %s, want node a's %s (masquerade)", got.Addr(), a.ip)
		}
		if got := tcpEcho(t, a.ns, netip.AddrPortFrom(a.ip, 8082), a1.ns); got.Addr() != a1.ip {
			t.Errorf("pod to its own host: server saw %s, want %s", got.Addr(), a1.ip)
		}
	})
	t.Run("fast path bypasses the host stack", func(t *testing.T) {
		if n := sameNode(); n != 0 {
			t.Errorf("%d same-node pod packets went through the kernel's FORWARD chain", n)
		}
		if n := crossNode(); n != 0 {
			t.Errorf("%d cross-node pod packets went through the sending node's FORWARD chain", n)
		}
		if n := crossNodeIn(); n != 0 {
			t.Errorf("%d cross-node pod packets went through the receiving node's FORWARD chain", n)
		}
	})
	t.Run("counters", func(t *testing.T) {
		st := a.stats(t)
		s, ok := st[a1.ip.String()]
		if !ok || s.Pod != "default/a1" {
			t.Fatalf("stats for %s: %+v (all: %+v)", a1.ip, s, st)
		}
		// 3 pings to each of 4 targets plus the TCP streams.
		if s.TxPackets < 12 || s.RxPackets < 12 || s.TxBytes < 64<<10 || s.RxBytes < 64<<10 {
			t.Errorf("a1 counters too low: %+v", s)
		}
		if s := st[a2.ip.String()]; s.RxPackets < 3 {
			t.Errorf("a2 received %d packets, want >= 3", s.RxPackets)
		}
		if s := b.stats(t)[b1.ip.String()]; s.RxPackets < 6 || s.TxPackets < 6 {
			t.Errorf("b1 counters too low: %+v", s)
		}
		metrics := scrape(t, a)
		want := fmt.Sprintf("lab_node_pod_tx_packets_total{ip=%q,pod=\"default/a1\"} %d", a1.ip.String(), 0)
		line := strings.TrimSuffix(want, " 0")
		if !strings.Contains(metrics, line) || strings.Contains(metrics, want+"\n") {
			t.Errorf("metrics lack a non-zero %s:\n%s", line, metrics)
		}
	})
	t.Run("check", func(t *testing.T) {
		conf := a.netconf(t)
		conf["prevResult"] = a1.result
		if out, err := a.cni(t, "CHECK", a1, conf); err != nil {
			t.Fatalf("CHECK: %v: %s", err, out)
		}
		// Break the pod: CHECK must notice.
		bpftest.IP(t, "-n", a2.ns, "addr", "flush", "dev", "eth0")
		conf["prevResult"] = a2.result
		out, err := a.cni(t, "CHECK", a2, conf)
		if err == nil {
			t.Fatal("CHECK passed on a pod without its address")
		}
		assertCNIError(t, out)
	})
	t.Run("route sync", func(t *testing.T) {
		writeNodes(t, a.nodesFile, a)
		waitRoute(t, a, b.podCIDR, false)
		writeNodes(t, a.nodesFile, a, b)
		waitRoute(t, a, b.podCIDR, true)
		ping(t, a1, b1.ip)
	})
	t.Run("daemon restart keeps pods", func(st *testing.T) {
		a.stopDaemon()
		a.startDaemon(t, attachMode) // runs until the whole test ends
		waitFor(st, "restarted daemon up", 20*time.Second, func() bool {
			return strings.Count(a.daemonLogs.String(), "pod network up") == 2
		})
		ping(st, a1, b1.ip)
		ping(st, b1, a1.ip)
		a3 := addPod(st, a, "a3") // a pod made after the restart
		slow := forwardCounter(st, a, a3.ip, a1.ip)
		ping(st, a3, a1.ip)
		if n := slow(); n != 0 {
			st.Errorf("after restart, %d same-node packets took the kernel path", n)
		}
	})
	t.Run("del", func(t *testing.T) {
		p := addPod(t, a, "d1")
		hostIf := cniplugin.HostVethName(p.id, "eth0")
		if out, err := a.cni(t, "DEL", p, a.netconf(t)); err != nil {
			t.Fatalf("DEL: %v: %s", err, out)
		}
		assertGone(t, a, p, hostIf)
		if out, err := a.cni(t, "DEL", p, a.netconf(t)); err != nil {
			t.Fatalf("second DEL: %v: %s", err, out)
		}
	})
}

func scrape(t testing.TB, n *emuNode) string {
	t.Helper()
	var conn net.Conn
	if err := bpftest.Do(n.ns, func() (err error) {
		conn, err = net.DialTimeout("tcp4", "127.0.0.1:9965", 5*time.Second)
		return err
	}); err != nil {
		t.Fatalf("metrics endpoint: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprint(conn, "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("metrics: %s: %s", resp.Status, body)
	}
	return string(body)
}

func assertCNIError(t testing.TB, out []byte) {
	t.Helper()
	var e struct {
		CNIVersion string `json:"cniVersion"`
		Code       uint   `json:"code"`
		Msg        string `json:"msg"`
	}
	if err := json.Unmarshal(out, &e); err != nil || e.Code == 0 || e.Msg == "" {
		t.Fatalf("stdout is not a CNI error: %v: %q", err, out)
	}
}

// assertGone checks that nothing of pod p is left on node n.
func assertGone(t testing.TB, n *emuNode, p *emuPod, hostIf string) {
	t.Helper()
	if out, err := bpftest.Exec(n.ns, "ip", "link", "show", hostIf); err == nil {
		t.Errorf("host veth %s left behind:\n%s", hostIf, out)
	}
	if out := bpftest.IP(t, "-n", p.ns, "-o", "link", "show"); strings.Contains(out, "eth0") {
		t.Errorf("pod eth0 left behind:\n%s", out)
	}
	if p.ip.IsValid() {
		if out := bpftest.IP(t, "-n", n.ns, "route", "show", p.ip.String()); strings.TrimSpace(out) != "" {
			t.Errorf("route to %s left behind: %s", p.ip, out)
		}
		if _, ok := n.stats(t)[p.ip.String()]; ok {
			t.Errorf("datapath endpoint %s left behind", p.ip)
		}
	}
	entries, _ := os.ReadDir(n.stateDir)
	for _, e := range entries {
		if b, err := os.ReadFile(filepath.Join(n.stateDir, e.Name())); err == nil && strings.Contains(string(b), p.id) {
			t.Errorf("IPAM record %s left behind: %s", e.Name(), b)
		}
	}
	for _, h := range []string{"ingress", "egress"} {
		if _, err := os.Stat(filepath.Join(n.bpfRoot, "links", h, hostIf)); err == nil {
			t.Errorf("TCX link pin %s/%s left behind", h, hostIf)
		}
	}
}

func TestFailedAddLeavesNothing(t *testing.T) {
	a, _ := twoNodes(t, "auto")
	p := newPod(t, a, "f1")
	// The pod already has an eth0: ADD must fail after allocating an
	// address and must give it back.
	bpftest.IP(t, "-n", p.ns, "link", "add", "eth0", "type", "veth", "peer", "name", "other0")
	out, err := a.cni(t, "ADD", p, a.netconf(t))
	if err == nil {
		t.Fatalf("ADD into a netns with eth0 succeeded: %s", out)
	}
	assertCNIError(t, out)
	bpftest.IP(t, "-n", p.ns, "link", "del", "eth0")
	assertGone(t, a, p, cniplugin.HostVethName(p.id, "eth0"))
	if st := a.stats(t); len(st) != 0 {
		t.Errorf("endpoints after a failed ADD: %+v", st)
	}

	// A missing config field is a CNI error too.
	conf := a.netconf(t)
	delete(conf, "podCIDR")
	out, err = a.cni(t, "ADD", p, conf)
	if err == nil {
		t.Fatal("ADD without podCIDR succeeded")
	}
	assertCNIError(t, out)
}

// A plugin killed in the middle of ADD leaves partial work; the runtime's
// next ADD for the same container must recover and give a working pod.
func TestAddAfterCrash(t *testing.T) {
	a, b := twoNodes(t, "auto")
	b1 := addPod(t, b, "b1")
	for _, step := range []string{"ipam", "veth", "endpoint"} {
		t.Run(step, func(t *testing.T) {
			p := newPod(t, a, "c"+step[:1])
			out, err := a.cni(t, "ADD", p, a.netconf(t), cniplugin.CrashEnv+"="+step)
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 99 {
				t.Fatalf("crash injection after %s: %v: %s", step, err, out)
			}
			p.add(t)
			t.Cleanup(func() { a.cni(t, "DEL", p, a.netconf(t)) })
			ping(t, p, b1.ip)
			if out, err := a.cni(t, "DEL", p, a.netconf(t)); err != nil {
				t.Fatalf("DEL: %v: %s", err, out)
			}
			assertGone(t, a, p, cniplugin.HostVethName(p.id, "eth0"))
		})
	}
}

func TestVersion(t *testing.T) {
	cmd := exec.Command(labNode)
	cmd.Env = []string{"CNI_COMMAND=VERSION"}
	cmd.Stdin = strings.NewReader(`{"cniVersion":"1.0.0"}`)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("VERSION: %v: %s", err, out)
	}
	var v struct {
		Supported []string `json:"supportedVersions"`
	}
	if err := json.Unmarshal(out, &v); err != nil || !strings.Contains(strings.Join(v.Supported, ","), "1.0.0") {
		t.Fatalf("VERSION: %v: %s", err, out)
	}
}

// lab-node reset leaves nothing of the pod network on the node.
func TestReset(t *testing.T) {
	for _, mode := range []string{"tcx", "clsact"} {
		t.Run(mode, func(t *testing.T) {
			a, _ := twoNodes(t, mode)
			p := newPod(t, a, "r1")
			p.add(t)
			a.stopDaemon()
			for range 2 {
				out, err := bpftest.Exec(a.ns, labNode, "reset", "--bpf-root", a.bpfRoot,
					"--cni-conf-dir", a.confDir, "--cni-bin-dir", a.binDir, "--state-dir", a.stateDir)
				if err != nil {
					t.Fatalf("reset: %v\n%s", err, out)
				}
			}
			if out := bpftest.IP(t, "-n", a.ns, "-o", "link", "show"); strings.Contains(out, cniplugin.HostVethName(p.id, "eth0")) {
				t.Errorf("pod veth left:\n%s", out)
			}
			if out := bpftest.IP(t, "-n", a.ns, "route", "show", "proto", "177"); strings.TrimSpace(out) != "" {
				t.Errorf("routes left:\n%s", out)
			}
			if out, _ := bpftest.Exec(a.ns, "iptables", "-w", "-t", "nat", "-S"); strings.Contains(out, "LAB-NODE") {
				t.Errorf("iptables rules left:\n%s", out)
			}
			for _, path := range []string{a.bpfRoot, a.stateDir, filepath.Join(a.confDir, daemon.ConfFile), filepath.Join(a.binDir, cniplugin.PluginType)} {
				if _, err := os.Stat(path); err == nil {
					t.Errorf("%s left", path)
				}
			}
			if out, _ := bpftest.Exec(a.ns, "tc", "filter", "show", "dev", "lan0", "ingress"); strings.TrimSpace(out) != "" {
				t.Errorf("clsact filters left on the uplink:\n%s", out)
			}
			err := bpftest.Do(a.ns, func() error {
				lan, err := netlink.LinkByName("lan0")
				if err != nil {
					return err
				}
				res, err := link.QueryPrograms(link.QueryOptions{Target: lan.Attrs().Index, Attach: ebpf.AttachTCXIngress})
				if err != nil {
					return err
				}
				if len(res.Programs) != 0 {
					t.Errorf("TCX programs left on the uplink: %+v", res.Programs)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}
