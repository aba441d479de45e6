package ssh_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labctl/lab/internal/sshtest"
	"github.com/labctl/lab/provision/ssh"
)

// env is one test's emulated nodes, client key and lab known_hosts file.
type env struct {
	h     *sshtest.Harness
	key   *sshtest.Key
	known string
	out   *recorder
}

func newEnv(t *testing.T) *env {
	t.Helper()
	h := sshtest.New(t)
	key := h.NewKey("id_ed25519", sshtest.Ed25519, "")
	h.Authorize("root", key)
	return &env{h: h, key: key, known: filepath.Join(t.TempDir(), "state", "known_hosts"), out: &recorder{}}
}

// config is the transport configuration tests start from.
func (e *env) config(t *testing.T) ssh.Config {
	return ssh.Config{
		KeyFiles:       []string{e.key.Path},
		KnownHosts:     e.known,
		ConnectTimeout: 20 * time.Second,
		AttemptTimeout: 5 * time.Second,
		KillGrace:      500 * time.Millisecond,
		Output:         e.out.line,
		Logf:           e.out.logf,
	}
}

func (e *env) transport(t *testing.T, cfg ssh.Config) *ssh.Transport {
	t.Helper()
	tr, err := ssh.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

func target(n *sshtest.Node, user string) ssh.Target {
	return ssh.Target{Name: n.Name, Host: n.Host, Port: n.Port, User: user}
}

func (e *env) client(t *testing.T, tr *ssh.Transport, n *sshtest.Node, user string) *ssh.Client {
	t.Helper()
	c, err := tr.Client(ctx(t), target(n, user))
	if err != nil {
		t.Fatalf("connect: %v\nsshd log:\n%s", err, n.Log())
	}
	return c
}

// ctx is a context that ends with the test (with a generous deadline so a
// hang fails the test instead of the whole binary).
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

// recorder collects output lines and log messages, and lets a test wait
// for one.
type recorder struct {
	mu      sync.Mutex
	lines   []ssh.Line
	logs    []string
	waiters []waiter
}

type waiter struct {
	substr string
	ch     chan struct{}
}

func (r *recorder) line(l ssh.Line) {
	r.add(fmt.Sprintf("%s | %s", l.Node, l.Text), func() { r.lines = append(r.lines, l) })
}

func (r *recorder) logf(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	r.add(s, func() { r.logs = append(r.logs, s) })
}

func (r *recorder) add(s string, store func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	store()
	kept := r.waiters[:0]
	for _, w := range r.waiters {
		if strings.Contains(s, w.substr) {
			close(w.ch)
		} else {
			kept = append(kept, w)
		}
	}
	r.waiters = kept
}

// seen returns a channel closed once a line or log containing substr
// arrives (or has arrived).
func (r *recorder) seen(substr string) <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	ch := make(chan struct{})
	for _, l := range r.lines {
		if strings.Contains(l.Node+" | "+l.Text, substr) {
			close(ch)
			return ch
		}
	}
	for _, l := range r.logs {
		if strings.Contains(l, substr) {
			close(ch)
			return ch
		}
	}
	r.waiters = append(r.waiters, waiter{substr, ch})
	return ch
}

// all returns everything recorded, one string per line.
func (r *recorder) all() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for _, l := range r.lines {
		fmt.Fprintf(&b, "%s | %s\n", l.Node, l.Text)
	}
	for _, l := range r.logs {
		fmt.Fprintf(&b, "log: %s\n", l)
	}
	return b.String()
}

// wait blocks until ch is closed or the test's deadline passes.
func wait(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(time.Minute):
		t.Fatalf("gave up waiting for %s", what)
	}
}

// eventually polls f until it returns nil, failing the test after a minute.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
