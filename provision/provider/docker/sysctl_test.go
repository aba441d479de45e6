package docker

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHostSysctlsAreRestored changes a host setting the way a kubelet in a
// node would, and checks that Delete's restore puts the saved value back.
func TestHostSysctlsAreRestored(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to write /proc/sys")
	}
	const key = "kernel/panic"
	orig, err := os.ReadFile(filepath.Join("/proc/sys", key))
	if err != nil {
		t.Skip(err)
	}
	t.Cleanup(func() { _ = os.WriteFile(filepath.Join("/proc/sys", key), orig, 0o644) })
	p := &Provider{stateDir: t.TempDir()}
	if err := p.saveHostSysctls(); err != nil {
		t.Fatal(err)
	}
	changed := "17"
	if strings.TrimSpace(string(orig)) == changed {
		changed = "18"
	}
	if err := os.WriteFile(filepath.Join("/proc/sys", key), []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	// A second save must not record the changed value.
	if err := p.saveHostSysctls(); err != nil {
		t.Fatal(err)
	}
	if err := p.restoreHostSysctls(); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join("/proc/sys", key))
	if string(got) != string(orig) {
		t.Errorf("kernel.panic is %q after restore, want %q", got, orig)
	}
	if _, err := os.Stat(filepath.Join(p.stateDir, sysctlFile)); !os.IsNotExist(err) {
		t.Error("the saved values were not removed after the restore")
	}
}
