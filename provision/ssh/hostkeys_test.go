package ssh

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
)

// TestRecordAcrossProcesses has many hostKeys — each with its own mutex,
// as separate lab processes on one lab would be — record new hosts in the
// same known_hosts file at once: every line must survive.
func TestRecordAcrossProcesses(t *testing.T) {
	file := filepath.Join(t.TempDir(), "known_hosts")
	const n = 40
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		h, err := newHostKeys(file, AcceptNew, t.Logf)
		if err != nil {
			t.Fatal(err)
		}
		key := newHostKey(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.mu.Lock()
			defer h.mu.Unlock()
			errs <- h.record(fmt.Sprintf("10.0.0.%d:22", i+1), key, false)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(string(data), "\n"); got != n {
		t.Errorf("known_hosts has %d lines after %d concurrent first contacts; lines were lost", got, n)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("known_hosts mode %v, %v", fi.Mode(), err)
	}
}

// TestFirstUseOnceAcrossProcesses: two lab processes that both found no
// key for a host are offered different keys; the first records its key,
// and the second must then refuse its own as a changed key instead of
// trusting a second key for the host.
func TestFirstUseOnceAcrossProcesses(t *testing.T) {
	file := filepath.Join(t.TempDir(), "known_hosts")
	target := Target{Name: "n1", Host: "10.0.0.1", Port: 22}
	var procs []*hostKeys
	for range 2 {
		h, err := newHostKeys(file, AcceptNew, t.Logf)
		if err != nil {
			t.Fatal(err)
		}
		// Both read the (empty) file before either records.
		if known, err := h.known(target.Addr()); err != nil || len(known) != 0 {
			t.Fatalf("known %v, %v", known, err)
		}
		procs = append(procs, h)
	}
	first, second := newHostKey(t), newHostKey(t)
	remote := fakeAddr(target.Addr())
	if err := procs[0].callback(target)("", remote, first); err != nil {
		t.Fatalf("first contact: %v", err)
	}
	err := procs[1].callback(target)("", remote, second)
	if !errors.Is(err, ErrHostKeyChanged) {
		t.Fatalf("the second process trusted another key for the host: %v", err)
	}
	t.Logf("error: %v", err)
	// The same key as recorded is fine, and the file holds one line.
	if err := procs[1].callback(target)("", remote, first); err != nil {
		t.Fatalf("the recorded key: %v", err)
	}
	if data, _ := os.ReadFile(file); strings.Count(string(data), "\n") != 1 {
		t.Errorf("known_hosts:\n%s", data)
	}
}

// TestReadOnlyKnownHosts: a dry run trusts a new host's key for itself
// without writing known_hosts, keeps to that key, and refuses a key other
// than the one the file or a provider's pin holds.
func TestReadOnlyKnownHosts(t *testing.T) {
	file := filepath.Join(t.TempDir(), "known_hosts")
	target := Target{Name: "n1", Host: "10.0.0.1", Port: 22}
	remote := fakeAddr(target.Addr())
	h, err := newHostKeys(file, AcceptNew, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	h.readOnly = true
	first, second := newHostKey(t), newHostKey(t)
	if err := h.callback(target)("", remote, first); err != nil {
		t.Fatalf("first contact: %v", err)
	}
	if err := h.callback(target)("", remote, first); err != nil {
		t.Fatalf("the same key again: %v", err)
	}
	if err := h.callback(target)("", remote, second); !errors.Is(err, ErrHostKeyChanged) {
		t.Fatalf("another key for the same host: %v", err)
	}
	pinned, err := newHostKeys(file, Pinned, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	pinned.readOnly = true
	target.HostKeys = []ssh.PublicKey{first}
	if err := pinned.callback(target)("", remote, first); err != nil {
		t.Fatalf("the pinned key: %v", err)
	}
	if err := pinned.callback(target)("", remote, second); !errors.Is(err, ErrHostKeyChanged) {
		t.Fatalf("a key other than the pinned one: %v", err)
	}
	if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("known_hosts was written in read-only mode: %v", err)
	}
	if _, err := os.Stat(file + ".lock"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("known_hosts.lock was made in read-only mode: %v", err)
	}
}

// newHostKey is a fresh ed25519 host key.
func newHostKey(t *testing.T) ssh.PublicKey {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return key
}
