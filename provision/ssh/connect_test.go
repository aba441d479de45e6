package ssh_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/labctl/lab/internal/sshtest"
	"github.com/labctl/lab/provision/ssh"
	xssh "golang.org/x/crypto/ssh"
)

func TestFirstContactRecordsKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	n1 := e.h.StartNode(sshtest.NodeOptions{Name: "cp1"})
	n2 := e.h.StartNode(sshtest.NodeOptions{Name: "cp2"})
	tr := e.transport(t, e.config(t))
	// Concurrent first contacts must all be recorded.
	err := tr.Each(ctx(t), []ssh.Target{target(n1, "root"), target(n2, "root")}, 0, func(ctx2 context.Context, c *ssh.Client) error {
		return c.Run(ctx2, "true")
	})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(e.known)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("known_hosts mode %v, want 0600", fi.Mode().Perm())
	}
	data, _ := os.ReadFile(e.known)
	for _, n := range []*sshtest.Node{n1, n2} {
		want := fmt.Sprintf("[%s]:%d %s", n.Host, n.Port, strings.TrimSpace(string(xssh.MarshalAuthorizedKey(n.HostKeys[0]))))
		if !strings.Contains(string(data), want) {
			t.Errorf("known_hosts lacks %q:\n%s", want, data)
		}
	}
	// A strict transport trusts what was recorded.
	cfg := e.config(t)
	cfg.Policy = ssh.Strict
	e.client(t, e.transport(t, cfg), n1, "root")
}

func TestChangedHostKeyRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	n := e.h.StartNode(sshtest.NodeOptions{Name: "cp1"})
	e.client(t, e.transport(t, e.config(t)), n, "root")
	before, _ := os.ReadFile(e.known)
	old := n.HostKeys[0]

	n.RotateHostKeys() // the node was recreated at the same address
	_, err := e.transport(t, e.config(t)).Client(ctx(t), target(n, "root"))
	if !errors.Is(err, ssh.ErrHostKeyChanged) {
		t.Fatalf("got %v, want a changed host key error", err)
	}
	msg := err.Error()
	t.Log(msg)
	for _, want := range []string{"cp1", xssh.FingerprintSHA256(old), xssh.FingerprintSHA256(n.HostKeys[0]),
		e.known + ":1", "delete line 1 of " + e.known} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(e.out.all(), "retrying") {
		t.Errorf("a changed host key was retried:\n%s", e.out.all())
	}
	after, _ := os.ReadFile(e.known)
	if string(after) != string(before) {
		t.Errorf("known_hosts changed after a refused key:\n%s", after)
	}
}

func TestStrictRefusesUnknownKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	n := e.h.StartNode(sshtest.NodeOptions{Name: "w1"})
	cfg := e.config(t)
	cfg.Policy = ssh.Strict
	_, err := e.transport(t, cfg).Client(ctx(t), target(n, "root"))
	if !errors.Is(err, ssh.ErrHostKeyUnknown) || !strings.Contains(err.Error(), "w1") {
		t.Fatalf("got %v, want an unknown host key error naming w1", err)
	}
	if _, err := os.Stat(e.known); !os.IsNotExist(err) {
		t.Errorf("strict policy wrote %s", e.known)
	}
}

func TestPinnedKeys(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	n := e.h.StartNode(sshtest.NodeOptions{Name: "c1"})
	cfg := e.config(t)
	cfg.Policy = ssh.Pinned
	tg := target(n, "root")
	tg.HostKeys = n.HostKeys
	if _, err := e.transport(t, cfg).Client(ctx(t), tg); err != nil {
		t.Fatal(err)
	}
	// The pinned key is recorded for OpenSSH; a recreated node replaces it.
	data, _ := os.ReadFile(e.known)
	if !strings.Contains(string(data), strings.TrimSpace(string(xssh.MarshalAuthorizedKey(n.HostKeys[0])))) {
		t.Errorf("pinned key not recorded:\n%s", data)
	}
	n.RotateHostKeys()
	tg.HostKeys = n.HostKeys
	if _, err := e.transport(t, cfg).Client(ctx(t), tg); err != nil {
		t.Fatal(err)
	}
	data, _ = os.ReadFile(e.known)
	if lines := strings.Count(string(data), "\n"); lines != 1 {
		t.Errorf("known_hosts has %d lines after a pinned key changed, want 1:\n%s", lines, data)
	}

	// A key other than the pinned one is refused.
	other := e.h.StartNode(sshtest.NodeOptions{Name: "c2"})
	tg.HostKeys = other.HostKeys
	_, err := e.transport(t, cfg).Client(ctx(t), tg)
	if !errors.Is(err, ssh.ErrHostKeyChanged) || !strings.Contains(err.Error(), xssh.FingerprintSHA256(other.HostKeys[0])) {
		t.Fatalf("got %v, want a refused key naming the pinned fingerprint", err)
	}
}

// A node with several host keys must be asked for the type that was
// recorded, or a key of another type would look like a changed key.
func TestHostKeyTypeFollowsKnownKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	n := e.h.StartNode(sshtest.NodeOptions{Name: "multi", HostKeyTypes: []string{sshtest.Ed25519, sshtest.ECDSA, sshtest.RSA}})
	for _, k := range n.HostKeys[1:] {
		line := fmt.Sprintf("[%s]:%d %s", n.Host, n.Port, xssh.MarshalAuthorizedKey(k))
		if err := os.MkdirAll(strings.TrimSuffix(e.known, "/known_hosts"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(e.known, []byte(line), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg := e.config(t)
		cfg.Policy = ssh.Strict
		if _, err := e.transport(t, cfg).Client(ctx(t), target(n, "root")); err != nil {
			t.Errorf("%s known: %v", k.Type(), err)
		}
	}
}

func TestAuthFailureIsPermanent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	n := e.h.StartNode(sshtest.NodeOptions{Name: "cp1"})
	stranger := e.h.NewKey("stranger", sshtest.ECDSA, "")
	cfg := e.config(t)
	cfg.KeyFiles = []string{stranger.Path}
	cfg.ConnectTimeout = time.Hour // a retry loop would hang the test
	_, err := e.transport(t, cfg).Client(ctx(t), target(n, "root"))
	if !errors.Is(err, ssh.ErrAuth) {
		t.Fatalf("got %v, want an authentication error", err)
	}
	t.Log(err)
	for _, want := range []string{"cp1", "root@", stranger.Path, stranger.Fingerprint(), "permanent"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if strings.Contains(e.out.all(), "retrying") {
		t.Errorf("an authentication failure was retried:\n%s", e.out.all())
	}
}

func TestKeyTypesAndAgent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	n := e.h.StartNode(sshtest.NodeOptions{Name: "n"})
	for _, typ := range []string{sshtest.Ed25519, sshtest.ECDSA, sshtest.RSA} {
		k := e.h.NewKey("id_"+typ, typ, "")
		e.h.Authorize("root", k)
		cfg := e.config(t)
		cfg.KeyFiles = []string{k.Path}
		c := e.client(t, e.transport(t, cfg), n, "root")
		if err := c.Run(ctx(t), "true"); err != nil {
			t.Errorf("%s key: %v", typ, err)
		}
	}

	// A key only the agent holds.
	k := e.h.NewKey("agent_only", sshtest.Ed25519, "")
	e.h.Authorize("root", k)
	sock := e.h.Agent(k)
	cfg := e.config(t)
	cfg.KeyFiles = nil
	cfg.Agent, cfg.AgentSocket = true, sock
	c := e.client(t, e.transport(t, cfg), n, "root")
	if err := c.Run(ctx(t), "true"); err != nil {
		t.Fatal(err)
	}
}

func TestEncryptedKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	k := e.h.NewKey("encrypted", sshtest.Ed25519, "s3cret pass")
	e.h.Authorize("root", k)
	cfg := e.config(t)
	cfg.KeyFiles = []string{k.Path}

	// Without a way to ask: a clear error before any node is contacted.
	_, err := ssh.New(cfg)
	if !errors.Is(err, ssh.ErrEncryptedKey) || !strings.Contains(err.Error(), "ssh-add "+k.Path) {
		t.Fatalf("got %v, want an encrypted key error that suggests ssh-add", err)
	}
	// No terminal (a pipe, as in CI): the same, saying why.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	cfg.Passphrase = ssh.TerminalPassphrase(r)
	_, err = ssh.New(cfg)
	if !errors.Is(err, ssh.ErrEncryptedKey) || !strings.Contains(err.Error(), "no terminal") {
		t.Fatalf("got %v, want an error saying there is no terminal", err)
	}
	// With the passphrase it logs in.
	cfg.Passphrase = func(string) ([]byte, error) { return []byte(k.Passphrase), nil }
	n := e.h.StartNode(sshtest.NodeOptions{})
	if err := e.client(t, e.transport(t, cfg), n, "root").Run(ctx(t), "true"); err != nil {
		t.Fatal(err)
	}
}

func TestNodeThatComesUpLate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	n := e.h.StartNode(sshtest.NodeOptions{Name: "late", Deferred: true})
	tr := e.transport(t, e.config(t))
	type result struct {
		c   *ssh.Client
		err error
	}
	res := make(chan result, 1)
	go func() {
		c, err := tr.Client(ctx(t), target(n, "root"))
		res <- result{c, err}
	}()
	wait(t, e.out.seen("late: connect attempt 2 failed"), "two failed connection attempts")
	n.Start()
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	if err := r.c.Run(ctx(t), "true"); err != nil {
		t.Fatal(err)
	}
}

func TestConnectTimeout(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	n := e.h.StartNode(sshtest.NodeOptions{Name: "never", Deferred: true})
	cfg := e.config(t)
	cfg.ConnectTimeout = time.Second
	_, err := e.transport(t, cfg).Client(ctx(t), target(n, "root"))
	var de *ssh.DialError
	if !errors.As(err, &de) || de.Attempts < 2 || !strings.Contains(err.Error(), "never") {
		t.Fatalf("got %v, want a dial error after several attempts", err)
	}
	var op *net.OpError
	if !errors.As(err, &op) {
		t.Errorf("dial error does not keep its cause: %v", err)
	}
}

func TestJumpHostChain(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	jumps, inner := e.h.JumpChain("inner", 2)
	cfg := e.config(t)
	for _, j := range jumps {
		cfg.Jumps = append(cfg.Jumps, target(j, "root"))
	}
	tr := e.transport(t, cfg)
	out, err := e.client(t, tr, inner, "root").Output(ctx(t), "ip -4 -o addr show")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), " "+inner.Host+"/") {
		t.Fatalf("command did not run on %s:\n%s", inner.Host, out)
	}
	// Every hop's key was checked and recorded.
	data, _ := os.ReadFile(e.known)
	for _, n := range append(jumps, inner) {
		if !strings.Contains(string(data), strings.TrimSpace(string(xssh.MarshalAuthorizedKey(n.HostKeys[0])))) {
			t.Errorf("host key of %s not recorded:\n%s", n.Name, data)
		}
	}
	// A changed key on a jump host stops the chain.
	jumps[1].RotateHostKeys()
	_, err = e.transport(t, cfg).Client(ctx(t), target(inner, "root"))
	if !errors.Is(err, ssh.ErrHostKeyChanged) || !strings.Contains(err.Error(), jumps[1].Host) {
		t.Fatalf("got %v, want the jump host's changed key refused", err)
	}
}
