// Package sshtest starts emulated nodes for integration tests: real OpenSSH
// sshd processes, each with its own host key and its own address and port,
// optionally inside network namespaces behind a chain of jump hosts, plus
// test users (with and without passwordless sudo), client keys and a real
// ssh-agent.
//
// Everything it creates lives under a temporary directory and is removed by
// the test's cleanup, including users, sudoers files and namespaces. It needs
// root and the OpenSSH server; without them tests are skipped, or fail when
// LAB_REQUIRE_TOOLS=1 (as in CI), so nothing silently skips there.
package sshtest

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"github.com/labctl/lab/internal/tooltest"
)

// TB is the part of testing.TB the harness uses. It lets benchmark programs
// outside `go test` start nodes too.
type TB interface {
	Helper()
	Cleanup(func())
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
	Skipf(format string, args ...any)
}

// Require skips the test (or fails it when LAB_REQUIRE_TOOLS=1) unless it runs
// as root and the named programs are on PATH.
func Require(t TB, tools ...string) {
	t.Helper()
	tooltest.Require(t, "sshtest: apt-get install openssh-server openssh-client sudo iproute2", tools...)
}

// Harness owns the shared pieces of a set of emulated nodes: the working
// directory, client keys, authorized_keys files and test users.
type Harness struct {
	t   TB
	Dir string

	// ID is a short random string that keeps names (users, namespaces,
	// interfaces) of concurrently running test binaries apart.
	ID string

	mu      sync.Mutex
	nodes   int
	netbase [2]byte // 127.netbase[0].netbase[1].n for loopback nodes
	links   int
}

// New returns a harness whose files live under a fresh temporary directory.
// It skips the test when root, sshd, ssh-keygen or ssh-agent are missing.
func New(t TB) *Harness {
	t.Helper()
	Require(t, "sshd", "ssh-keygen", "ssh-agent", "ssh-add")
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatalf("sshtest: privilege separation directory: %v", err)
	}
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	dir, err := os.MkdirTemp("", "lab-sshtest-")
	if err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// Non-root test users have their homes here and sshd reads their
	// authorized_keys with their privileges.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	h := &Harness{
		t:   t,
		Dir: dir,
		ID:  fmt.Sprintf("%x", b[:3]),
	}
	// A random 127.x.y.0/24 keeps node addresses of parallel test binaries
	// apart; each node gets its own address in it.
	n := binary.BigEndian.Uint16(b[3:5])
	h.netbase = [2]byte{byte(100 + n%150), byte(n >> 8)}
	for _, d := range []string{"authorized_keys", "home", "nodes"} {
		if err := os.MkdirAll(filepath.Join(h.Dir, d), 0o755); err != nil {
			t.Fatalf("sshtest: %v", err)
		}
	}
	return h
}

// authorizedKeysFile is the path sshd reads for user (AuthorizedKeysFile).
func (h *Harness) authorizedKeysFile(user string) string {
	return filepath.Join(h.Dir, "authorized_keys", user)
}

// Authorize appends key to user's authorized_keys for every node of h.
func (h *Harness) Authorize(user string, k *Key) {
	h.t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	f, err := os.OpenFile(h.authorizedKeysFile(user), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		h.t.Fatalf("sshtest: %v", err)
	}
	defer f.Close()
	if _, err := f.Write(k.AuthorizedKey()); err != nil {
		h.t.Fatalf("sshtest: %v", err)
	}
}

func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
