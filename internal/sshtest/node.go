package sshtest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/labctl/lab/internal/syncbuf"
)

// NodeOptions say how to start a node.
type NodeOptions struct {
	// Name is the node's name; it also names its directory.
	Name string
	// Deferred creates the node (host key, address, port) without starting
	// sshd: call Start later, e.g. to emulate a node that is still booting.
	Deferred bool
	// Forwarding allows direct-tcpip channels (a jump host).
	Forwarding bool
	// HostKeyTypes lists the host key types (default ed25519).
	HostKeyTypes []string

	netns string // network namespace to run in ("" = the host's)
	addr  string // listen address ("" = a fresh loopback address)
}

// Node is one emulated node: an sshd process with its own host key,
// address and port.
type Node struct {
	Name string
	Host string
	Port int
	// HostKeys are the node's public host keys, as a provider that reads
	// them out of band would report them.
	HostKeys []ssh.PublicKey

	h    *Harness
	dir  string
	opts NodeOptions

	mu  sync.Mutex
	cmd *exec.Cmd
	log *syncbuf.Buffer
}

// Addr is host:port.
func (n *Node) Addr() string { return net.JoinHostPort(n.Host, strconv.Itoa(n.Port)) }

// StartNode creates a node with a fresh host key on its own loopback address
// and a free port and starts its sshd (unless opts.Deferred). The node is
// stopped by the test's cleanup.
func (h *Harness) StartNode(opts NodeOptions) *Node {
	h.t.Helper()
	h.mu.Lock()
	h.nodes++
	i := h.nodes
	h.mu.Unlock()
	if opts.Name == "" {
		opts.Name = fmt.Sprintf("node%d", i)
	}
	if len(opts.HostKeyTypes) == 0 {
		opts.HostKeyTypes = []string{Ed25519}
	}
	n := &Node{Name: opts.Name, h: h, opts: opts, dir: filepath.Join(h.Dir, "nodes", fmt.Sprintf("%d-%s", i, opts.Name))}
	if err := os.MkdirAll(n.dir, 0o755); err != nil {
		h.t.Fatalf("sshtest: %v", err)
	}
	n.Host = opts.addr
	if n.Host == "" {
		n.Host = fmt.Sprintf("127.%d.%d.%d", h.netbase[0], h.netbase[1], 1+i%254)
	}
	n.newHostKeys()
	n.Port = n.freePort()
	h.t.Cleanup(n.stop)
	if !opts.Deferred {
		n.Start()
	}
	return n
}

// newHostKeys replaces the node's host keys with fresh ones.
func (n *Node) newHostKeys() {
	n.h.t.Helper()
	n.HostKeys = nil
	for _, typ := range n.opts.HostKeyTypes {
		k, err := writeKey(filepath.Join(n.dir, "ssh_host_"+typ+"_key"), typ, "")
		if err != nil {
			n.h.t.Fatalf("sshtest: host key: %v", err)
		}
		n.HostKeys = append(n.HostKeys, k.Public)
	}
}

// freePort returns a port that is free on the node's address now. In a
// network namespace every port is free (nothing else listens there).
func (n *Node) freePort() int {
	n.h.t.Helper()
	if n.opts.netns != "" {
		return 22
	}
	l, err := net.Listen("tcp", net.JoinHostPort(n.Host, "0"))
	if err != nil {
		n.h.t.Fatalf("sshtest: free port on %s: %v", n.Host, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (n *Node) config() string {
	var b strings.Builder
	fmt.Fprintf(&b, "ListenAddress %s\nPort %d\n", n.Host, n.Port)
	for _, typ := range n.opts.HostKeyTypes {
		fmt.Fprintf(&b, "HostKey %s\n", filepath.Join(n.dir, "ssh_host_"+typ+"_key"))
	}
	fwd := "no"
	if n.opts.Forwarding {
		fwd = "yes"
	}
	fmt.Fprintf(&b, `PidFile none
AuthorizedKeysFile %s/%%u
StrictModes no
UsePAM no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
AllowTcpForwarding %s
AllowAgentForwarding no
X11Forwarding no
UseDNS no
PrintMotd no
MaxStartups 200:30:400
Subsystem sftp internal-sftp
LogLevel INFO
# Debian's bash reads ~/.bashrc for every command that arrives through sshd
# unless SHLVL says it is nested; root's runs pyenv on some machines.
SetEnv SHLVL=1
`, filepath.Join(n.h.Dir, "authorized_keys"), fwd)
	return b.String()
}

// Start starts sshd (again) with the node's current host keys, address and
// port, and returns once it accepts TCP connections.
func (n *Node) Start() {
	n.h.t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		n.h.t.Fatalf("sshtest: node %s already running", n.Name)
	}
	cfg := filepath.Join(n.dir, "sshd_config")
	if err := os.WriteFile(cfg, []byte(n.config()), 0o644); err != nil {
		n.h.t.Fatalf("sshtest: %v", err)
	}
	args := []string{"-D", "-e", "-f", cfg}
	name := "/usr/sbin/sshd"
	if p, err := exec.LookPath("sshd"); err == nil {
		name = p
	}
	if n.opts.netns != "" {
		args = append([]string{"netns", "exec", n.opts.netns, name}, args...)
		name = "ip"
	}
	for attempt := 0; ; attempt++ {
		cmd, err := n.startSSHD(name, args)
		if err == nil {
			n.cmd = cmd
			return
		}
		// Another process may have taken the port since it was picked.
		if attempt < 5 && n.opts.netns == "" && strings.Contains(n.log.String(), "Address already in use") {
			n.Port = n.freePort()
			if err := os.WriteFile(cfg, []byte(n.config()), 0o644); err != nil {
				n.h.t.Fatalf("sshtest: %v", err)
			}
			continue
		}
		n.h.t.Fatalf("sshtest: sshd for %s on %s: %v\n%s", n.Name, n.Addr(), err, n.log.String())
	}
}

// startSSHD runs sshd and waits until it reports that it listens.
func (n *Node) startSSHD(name string, args []string) (*exec.Cmd, error) {
	cmd := exec.Command(name, args...)
	n.log = &syncbuf.Buffer{}
	cmd.Stdout, cmd.Stderr = n.log, n.log
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	err := waitFor(15*time.Second, func() error {
		select {
		case <-exited:
			return fmt.Errorf("sshd exited")
		default:
		}
		if !strings.Contains(n.log.String(), "Server listening on") {
			return fmt.Errorf("sshd is not listening yet")
		}
		return nil
	})
	if err != nil {
		_ = cmd.Process.Kill()
		<-exited
		return nil, err
	}
	return cmd, nil
}

// Stop stops sshd (and so every connection to the node).
func (n *Node) Stop() {
	n.h.t.Helper()
	n.stop()
}

func (n *Node) stop() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return
	}
	pid := n.cmd.Process.Pid
	for _, p := range descendants(pid) {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
	_ = n.cmd.Process.Kill()
	_ = waitFor(10*time.Second, func() error {
		if syscall.Kill(pid, 0) == nil {
			return fmt.Errorf("still running")
		}
		return nil
	})
	n.cmd = nil
}

// RotateHostKeys gives the node new host keys, as when it is recreated at
// the same address, restarting sshd if it runs.
func (n *Node) RotateHostKeys() {
	n.h.t.Helper()
	n.mu.Lock()
	running := n.cmd != nil
	n.mu.Unlock()
	n.stop()
	n.newHostKeys()
	if running {
		n.Start()
	}
}

// Log returns what sshd has logged so far.
func (n *Node) Log() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.log == nil {
		return ""
	}
	return n.log.String()
}

// ConnectionPIDs returns the sshd processes serving connections to the node
// (the per-connection monitor and session processes), not the listener.
func (n *Node) ConnectionPIDs() []int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return nil
	}
	var pids []int
	for _, p := range descendants(n.cmd.Process.Pid) {
		if comm(p) == "sshd" {
			pids = append(pids, p)
		}
	}
	return pids
}

// Signal sends sig to every process serving a connection to the node.
// SIGKILL emulates a node whose connection dies; SIGSTOP one that stops
// answering without closing the connection.
func (n *Node) Signal(sig syscall.Signal) error {
	pids := n.ConnectionPIDs()
	if len(pids) == 0 {
		return fmt.Errorf("node %s has no connections", n.Name)
	}
	for _, p := range pids {
		if err := syscall.Kill(p, sig); err != nil {
			return err
		}
	}
	return nil
}

// Processes returns the pids of processes on the machine whose command
// line contains s. Emulated nodes share the machine's process table, so a
// test can see whether a remote command still runs.
func Processes(s string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if strings.Contains(string(bytes.ReplaceAll(b, []byte{0}, []byte{' '})), s) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func comm(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(b))
}

// descendants lists every process below pid.
func descendants(pid int) []int {
	children := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// The command name may hold spaces: fields start after ')'.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 2 {
			continue
		}
		pp, _ := strconv.Atoi(f[1])
		children[pp] = append(children[pp], p)
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}
