package templates

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/labctl/lab/internal/syncbuf"
	"github.com/labctl/lab/internal/tooltest"
	"github.com/labctl/lab/provision/labfile"
)

// daemon is a long-running process the test started, in its own process
// group so that it and its children are stopped together, by id.
type daemon struct {
	name string
	pid  int
	out  *syncbuf.Buffer
	done chan struct{}
	err  error
}

// startDaemon starts a process that the test stops (SIGTERM, then SIGKILL
// after a grace period) when it ends; on failure its output is logged.
func startDaemon(t *testing.T, name string, args ...string) *daemon {
	t.Helper()
	d := &daemon{name: name, out: &syncbuf.Buffer{}, done: make(chan struct{})}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdout, cmd.Stderr = d.out, d.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		d.err = cmd.Wait()
		close(d.done)
	}()
	pgid := cmd.Process.Pid
	d.pid = pgid
	t.Cleanup(func() {
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-d.done
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, d.out)
		}
	})
	return d
}

// exited reports whether the daemon has stopped on its own.
func (d *daemon) exited() error {
	select {
	case <-d.done:
		return fmt.Errorf("%s exited: %v\n%s", d.name, d.err, d.out)
	default:
		return nil
	}
}

// waitFor polls cond until it holds, failing the test at the deadline or as
// soon as one of the daemons dies.
func waitFor(t *testing.T, timeout time.Duration, what string, daemons []*daemon, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		for _, d := range daemons {
			if err := d.exited(); err != nil {
				t.Fatal(err)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: still waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

// vipNode is one load-balancer node of the test: a network namespace on the
// shared bridge.
type vipNode struct {
	name, ns, iface string
}

// holds reports whether the node has the VIP on its lab interface.
func (n vipNode) holds(t *testing.T, vip string) bool {
	t.Helper()
	out := mustRun(t, "ip", "-n", n.ns, "-4", "-o", "addr", "show", "dev", n.iface)
	return strings.Contains(out, " "+vip+"/")
}

func holders(t *testing.T, nodes []vipNode, vip string) []vipNode {
	t.Helper()
	var out []vipNode
	for _, n := range nodes {
		if n.holds(t, vip) {
			out = append(out, n)
		}
	}
	return out
}

// TestVIPFailover runs the rendered haproxy.cfg, keepalived.conf and
// check_apiserver.sh of the ci lab's load-balancer nodes for real: each node
// is a network namespace on one bridge (itself in a namespace of its own),
// with openssl s_server answering /healthz over TLS where its kube-apiserver
// would be, so the track script and HAProxy's health checks run for real.
// Exactly one node must take the VIP; when its link goes down the VIP must
// move to exactly one other node and leave the failed one. The time the move
// took is logged, not asserted.
func TestVIPFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three daemons per node in network namespaces")
	}
	needRoot(t)
	for _, tool := range []string{"ip", "keepalived", "haproxy", "openssl", "bash", "timeout"} {
		needTool(t, tool)
	}
	if _, err := os.Stat("/etc/keepalived"); err != nil {
		tooltest.Missing(t, "/etc/keepalived (the mount point for each node's files) does not exist")
	}
	l, _, err := labfile.Load("../labs/ci.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if l.DedicatedLoadBalancers() {
		t.Fatal("ci lab: expected the load balancers on the control planes (each namespace runs an apiserver stand-in)")
	}
	vip := l.ControlPlane.VIP
	bits := l.NodeNetworkDef().Prefix().Bits()

	dir := t.TempDir()
	cert, key := filepath.Join(dir, "apiserver.crt"), filepath.Join(dir, "apiserver.key")
	mustRun(t, "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", key, "-out", cert, "-subj", "/CN=kube-apiserver", "-days", "1")

	br := newNetns(t, "br")
	mustRun(t, "ip", "-n", br, "link", "add", "br0", "type", "bridge")
	mustRun(t, "ip", "-n", br, "link", "set", "br0", "up")

	var nodes []vipNode
	var daemons []*daemon
	for i, n := range l.LoadBalancers() {
		node := vipNode{name: n.Name, ns: newNetns(t, fmt.Sprint(i)), iface: testFacts(l).Interface}
		ip := l.NodeIP(n).String()
		peer := fmt.Sprintf("port%d", i)
		mustRun(t, "ip", "-n", node.ns, "link", "add", node.iface, "type", "veth", "peer", "name", peer, "netns", br)
		mustRun(t, "ip", "-n", br, "link", "set", peer, "master", "br0", "up")
		mustRun(t, "ip", "-n", node.ns, "addr", "add", fmt.Sprintf("%s/%d", ip, bits), "dev", node.iface)
		mustRun(t, "ip", "-n", node.ns, "link", "set", node.iface, "up")

		files := renderNode(t, l, n)
		base := filepath.Join(dir, n.Name)
		etc := writeFiles(t, filepath.Join(base, "etc"), pick(t, files, KeepalivedConfigPath, CheckScriptPath)...)
		haproxyDir := writeFiles(t, filepath.Join(base, "haproxy"), pick(t, files, HAProxyConfigPath)...)
		run := filepath.Join(base, "run")
		if err := os.MkdirAll(run, 0o755); err != nil {
			t.Fatal(err)
		}

		daemons = append(daemons,
			startDaemon(t, n.Name+" apiserver stand-in", "ip", "netns", "exec", node.ns,
				"openssl", "s_server", "-quiet", "-www", "-accept", fmt.Sprintf("%s:%d", ip, l.ControlPlane.APIPort),
				"-cert", cert, "-key", key),
			startDaemon(t, n.Name+" haproxy", "ip", "netns", "exec", node.ns,
				"haproxy", "-db", "-f", filepath.Join(haproxyDir, "haproxy.cfg")),
			// keepalived sees this node's files at /etc/keepalived (a mount
			// private to its namespace) and keeps its pid files apart.
			startDaemon(t, n.Name+" keepalived", "ip", "netns", "exec", node.ns, "sh", "-c",
				`mount --bind "$1" /etc/keepalived && exec keepalived --dont-fork --log-console --log-detail `+
					`-f /etc/keepalived/keepalived.conf -p "$2/keepalived.pid" -r "$2/vrrp.pid" -c "$2/checkers.pid"`,
				"sh", etc, run),
		)
		nodes = append(nodes, node)
	}

	start := time.Now()
	var first vipNode
	waitFor(t, 60*time.Second, "exactly one node to hold the VIP", daemons, func() bool {
		h := holders(t, nodes, vip)
		if len(h) == 1 {
			first = h[0]
		}
		return len(h) == 1
	})
	t.Logf("%s took the VIP %v after start", first.name, time.Since(start).Round(time.Millisecond))

	var rest []vipNode
	for _, n := range nodes {
		if n != first {
			rest = append(rest, n)
		}
	}
	down := time.Now()
	mustRun(t, "ip", "-n", first.ns, "link", "set", first.iface, "down")
	waitFor(t, 30*time.Second, "another node to take the VIP", daemons, func() bool {
		return len(holders(t, rest, vip)) > 0
	})
	moved := time.Since(down)

	// Settled: one holder, and never the node that lost its link.
	var second vipNode
	waitFor(t, 30*time.Second, "exactly one healthy node, and not "+first.name+", to hold the VIP", daemons, func() bool {
		h := holders(t, nodes, vip)
		if len(h) == 1 && h[0] != first {
			second = h[0]
			return true
		}
		return false
	})
	t.Logf("link down on %s: VIP on %s after %v", first.name, second.name, moved.Round(time.Millisecond))
}

// TestCheckScriptJudgesTheLoadBalancerPath runs the rendered
// check_apiserver.sh against the rendered haproxy.cfg in a namespace: it
// must pass while HAProxy runs, with or without a healthy kube-apiserver
// behind it (before kubeadm init there is none), and fail once HAProxy is
// gone.
func TestCheckScriptJudgesTheLoadBalancerPath(t *testing.T) {
	needRoot(t)
	for _, tool := range []string{"ip", "haproxy", "openssl", "bash", "timeout"} {
		needTool(t, tool)
	}
	l := variantLab(t, "docker", "mode: vip, vip: 10.5.0.10", "", 1)
	n := l.Node("cp1")
	files := renderNode(t, l, n)
	dir := writeFiles(t, filepath.Join(t.TempDir(), "node"), pick(t, files, HAProxyConfigPath, CheckScriptPath)...)
	ns := nsWithInterface(t, "0", testFacts(l).Interface)
	ip := l.NodeIP(n).String()
	mustRun(t, "ip", "-n", ns, "addr", "add", ip+"/24", "dev", "eth0")

	var last string
	check := func() bool {
		out, err := run("ip", "netns", "exec", ns, filepath.Join(dir, "check_apiserver.sh"))
		last = out
		return err == nil
	}
	failsWith := func(msg string) func() bool {
		return func() bool { return !check() && strings.Contains(last, msg) }
	}

	haproxy := startDaemon(t, "haproxy", "ip", "netns", "exec", ns, "haproxy", "-db", "-f", filepath.Join(dir, "haproxy.cfg"))
	// No kube-apiserver yet (before kubeadm init): the VIP must stand anyway.
	waitFor(t, 30*time.Second, "the check to pass with HAProxy up and no kube-apiserver (last: "+last+")", []*daemon{haproxy}, check)

	cert, key := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	mustRun(t, "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", key, "-out", cert, "-subj", "/CN=kube-apiserver", "-days", "1")
	api := startDaemon(t, "apiserver stand-in", "ip", "netns", "exec", ns, "openssl", "s_server", "-quiet", "-www",
		"-accept", fmt.Sprintf("%s:%d", ip, l.ControlPlane.APIPort), "-cert", cert, "-key", key)
	waitFor(t, 30*time.Second, "the check to pass once an apiserver is healthy (last: "+last+")", []*daemon{haproxy, api}, check)

	// With the VIP on this node, the script also goes through it.
	mustRun(t, "ip", "-n", ns, "addr", "add", l.ControlPlane.VIP+"/24", "dev", "eth0")
	if !check() {
		t.Fatalf("check fails with the VIP held: %s", last)
	}

	if err := syscall.Kill(-haproxy.pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-haproxy.done
	waitFor(t, 30*time.Second, "the check to fail without HAProxy", []*daemon{api}, failsWith("does not answer"))
}
