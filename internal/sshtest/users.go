package sshtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// User creates a local test user whose login shell is /bin/sh and whose home
// is inside the harness directory, and returns its name. With sudo, the user
// may run anything as root without a password (a file in /etc/sudoers.d).
// The user and its sudoers file are removed by the test's cleanup.
func (h *Harness) User(sudo bool) string {
	h.t.Helper()
	Require(h.t, "useradd", "userdel")
	if sudo {
		Require(h.t, "sudo")
	}
	h.mu.Lock()
	h.nodes++ // shares the counter only to make names unique
	name := fmt.Sprintf("lab%s%d", h.ID, h.nodes)
	h.mu.Unlock()
	home := filepath.Join(h.Dir, "home", name)
	// useradd fails while another process holds /etc/passwd's lock, which
	// happens when test binaries run in parallel: retry for a while.
	err := waitFor(30*time.Second, func() error {
		return run("useradd", "--no-create-home", "--home-dir", home, "--shell", "/bin/sh",
			"--password", "*", "--comment", "lab sshtest", name)
	})
	if err != nil {
		h.t.Fatalf("sshtest: %v", err)
	}
	h.t.Cleanup(func() {
		if err := waitFor(30*time.Second, func() error { return run("userdel", name) }); err != nil {
			h.t.Logf("sshtest: %v", err)
		}
	})
	if err := os.MkdirAll(home, 0o755); err != nil {
		h.t.Fatalf("sshtest: %v", err)
	}
	if err := run("chown", name+":", home); err != nil {
		h.t.Fatalf("sshtest: %v", err)
	}
	if sudo {
		file := filepath.Join("/etc/sudoers.d", name)
		rule := fmt.Sprintf("%s ALL=(ALL) NOPASSWD: ALL\n", name)
		if err := os.WriteFile(file, []byte(rule), 0o440); err != nil {
			h.t.Fatalf("sshtest: %v", err)
		}
		h.t.Cleanup(func() { os.Remove(file) })
	}
	return strings.TrimSpace(name)
}
