package sshtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// sshCmd runs OpenSSH's client against the harness with host keys checked
// against a known_hosts file made from the nodes' keys.
func sshCmd(t *testing.T, h *Harness, key *Key, known []*Node, args ...string) *exec.Cmd {
	t.Helper()
	kh := filepath.Join(h.Dir, "known_hosts_"+strings.ReplaceAll(t.Name(), "/", "_"))
	var b strings.Builder
	for _, n := range known {
		for _, k := range n.HostKeys {
			addr := n.Host
			if n.Port != 22 {
				addr = fmt.Sprintf("[%s]:%d", n.Host, n.Port)
			}
			b.WriteString(addr + " " + string(ssh.MarshalAuthorizedKey(k)))
		}
	}
	if err := os.WriteFile(kh, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	// A config file (not -o options) so that ssh -J passes the same
	// settings to the ssh processes it starts for the jump hosts.
	cfg := kh + ".config"
	conf := fmt.Sprintf("Host *\n  IdentityFile %s\n  IdentitiesOnly yes\n  BatchMode yes\n"+
		"  StrictHostKeyChecking yes\n  UserKnownHostsFile %s\n  ConnectTimeout 5\n", key.Path, kh)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"-F", cfg}
	return exec.Command("ssh", append(base, args...)...)
}

func TestNodeWithOpenSSHClient(t *testing.T) {
	h := New(t)
	key := h.NewKey("id", Ed25519, "")
	h.Authorize("root", key)
	sudoer := h.User(true)
	plain := h.User(false)
	h.Authorize(sudoer, key)
	h.Authorize(plain, key)
	n := h.StartNode(NodeOptions{Name: "n1"})

	out, err := sshCmd(t, h, key, []*Node{n}, "-p", fmt.Sprint(n.Port), "root@"+n.Host, "id -u").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "0" {
		t.Fatalf("root: %v: %s\n%s", err, out, n.Log())
	}
	out, err = sshCmd(t, h, key, []*Node{n}, "-p", fmt.Sprint(n.Port), sudoer+"@"+n.Host, "sudo -n id -u").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "0" {
		t.Fatalf("sudo user: %v: %s\n%s", err, out, n.Log())
	}
	out, err = sshCmd(t, h, key, []*Node{n}, "-p", fmt.Sprint(n.Port), plain+"@"+n.Host, "sudo -n id -u").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "password is required") {
		t.Fatalf("user without sudo could become root: %v: %s", err, out)
	}

	// A rotated host key is refused by OpenSSH with the old known_hosts.
	old := n.HostKeys
	n.RotateHostKeys()
	stale := &Node{Name: n.Name, Host: n.Host, Port: n.Port, HostKeys: old}
	out, err = sshCmd(t, h, key, []*Node{stale}, "-p", fmt.Sprint(n.Port), "root@"+n.Host, "true").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "HOST IDENTIFICATION HAS CHANGED") {
		t.Fatalf("rotated host key accepted: %v: %s", err, out)
	}
}

func TestAgent(t *testing.T) {
	h := New(t)
	key := h.NewKey("agent-only", ECDSA, "")
	h.Authorize("root", key)
	n := h.StartNode(NodeOptions{})
	sock := h.Agent(key)
	os.Remove(key.Path) // only the agent has it now (ssh picks it by key.pub)
	cmd := sshCmd(t, h, key, []*Node{n}, "-p", fmt.Sprint(n.Port), "root@"+n.Host, "true")
	cmd.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("login with agent key: %v: %s", err, out)
	}
}

func TestJumpChainIsolation(t *testing.T) {
	h := New(t)
	key := h.NewKey("id", Ed25519, "")
	h.Authorize("root", key)
	jumps, target := h.JumpChain("inner", 2)

	// The target cannot be reached from the host directly. (TCP connects
	// may succeed here: the machine's default gateway accepts any address,
	// but no SSH server with the target's host key answers.)
	direct := sshCmd(t, h, key, []*Node{target}, "-o", "ConnectTimeout=3", "root@"+target.Host, "true")
	if out, err := direct.CombinedOutput(); err == nil {
		t.Fatalf("target %s is reachable without the jump hosts: %s", target.Addr(), out)
	}
	var hops []string
	for _, j := range jumps {
		hops = append(hops, "root@"+j.Addr())
	}
	all := append(append([]*Node{}, jumps...), target)
	out, err := sshCmd(t, h, key, all, "-J", strings.Join(hops, ","), "root@"+target.Host, "ip -4 -o addr show").CombinedOutput()
	if err != nil {
		t.Fatalf("through jump hosts: %v: %s", err, out)
	}
	if !strings.Contains(string(out), target.Host+"/") {
		t.Fatalf("command did not run on the target %s:\n%s", target.Host, out)
	}
}
