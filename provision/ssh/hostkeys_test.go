package ssh

import (
	"crypto/ed25519"
	"crypto/rand"
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
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		key, err := ssh.NewPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
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
