package docker

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sysctlTest changes kernel.panic the way a kubelet in a node would and
// puts the host's value back when the test ends.
func sysctlTest(t *testing.T) (orig, changed string, set func(string), get func() string) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to write /proc/sys")
	}
	p := filepath.Join("/proc/sys", "kernel/panic")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Skip(err)
	}
	orig = strings.TrimSpace(string(b))
	t.Cleanup(func() { _ = os.WriteFile(p, []byte(orig), 0o644) })
	changed = "17"
	if orig == changed {
		changed = "18"
	}
	set = func(v string) {
		if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	get = func() string {
		b, _ := os.ReadFile(p)
		return strings.TrimSpace(string(b))
	}
	return orig, changed, set, get
}

// TestHostSysctlsAreRestored: Delete's restore puts the saved value back,
// and a second save (a later Create) does not record a changed value.
func TestHostSysctlsAreRestored(t *testing.T) {
	orig, changed, set, get := sysctlTest(t)
	record := filepath.Join(t.TempDir(), "run", "record.json")
	p := &Provider{stateDir: t.TempDir(), sysctlRecord: record}
	if err := p.saveHostSysctls(); err != nil {
		t.Fatal(err)
	}
	set(changed)
	if err := p.saveHostSysctls(); err != nil {
		t.Fatal(err)
	}
	if err := p.restoreHostSysctls(); err != nil {
		t.Fatal(err)
	}
	if got := get(); got != orig {
		t.Errorf("kernel.panic is %q after restore, want %q", got, orig)
	}
	if _, err := os.Stat(record); !os.IsNotExist(err) {
		t.Error("the record was not removed after the last lab's restore")
	}
}

// TestHostSysctlsTwoLabs: the second lab must not record the first lab's
// changes as the host's values, and the first lab's down must leave them
// for the second lab's kubelets; the last down restores.
func TestHostSysctlsTwoLabs(t *testing.T) {
	orig, changed, set, get := sysctlTest(t)
	record := filepath.Join(t.TempDir(), "record.json")
	a := &Provider{stateDir: t.TempDir(), sysctlRecord: record}
	b := &Provider{stateDir: t.TempDir(), sysctlRecord: record}
	if err := a.saveHostSysctls(); err != nil {
		t.Fatal(err)
	}
	set(changed) // lab a's kubelets
	if err := b.saveHostSysctls(); err != nil {
		t.Fatal(err)
	}
	if err := a.restoreHostSysctls(); err != nil {
		t.Fatal(err)
	}
	if got := get(); got != changed {
		t.Errorf("lab a's down set kernel.panic to %q while lab b runs, want %q left", got, changed)
	}
	if err := b.restoreHostSysctls(); err != nil {
		t.Fatal(err)
	}
	if got := get(); got != orig {
		t.Errorf("after the last down kernel.panic is %q, want the host's %q", got, orig)
	}
}

// TestHostSysctlsForgetsGoneLabs: a lab whose state directory is gone (its
// lab down failed half-way, or it was deleted by hand) does not keep the
// host's settings changed forever; a record of another boot is ignored.
func TestHostSysctlsForgetsGoneLabs(t *testing.T) {
	orig, changed, set, get := sysctlTest(t)
	record := filepath.Join(t.TempDir(), "record.json")
	goneDir := filepath.Join(t.TempDir(), "gone")
	os.Mkdir(goneDir, 0o700)
	gone := &Provider{stateDir: goneDir, sysctlRecord: record}
	p := &Provider{stateDir: t.TempDir(), sysctlRecord: record}
	for _, x := range []*Provider{gone, p} {
		if err := x.saveHostSysctls(); err != nil {
			t.Fatal(err)
		}
	}
	set(changed)
	os.RemoveAll(goneDir)
	if err := p.restoreHostSysctls(); err != nil {
		t.Fatal(err)
	}
	if got := get(); got != orig {
		t.Errorf("kernel.panic %q, want %q: a gone lab held the restore back", got, orig)
	}

	// A record from another boot holds values the kernel has forgotten.
	if err := os.WriteFile(record, []byte(`{"bootID":"another-boot","values":{"kernel/panic":"99"},"labs":["/x"]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.saveHostSysctls(); err != nil {
		t.Fatal(err)
	}
	set(changed)
	if err := p.restoreHostSysctls(); err != nil {
		t.Fatal(err)
	}
	if got := get(); got != orig {
		t.Errorf("kernel.panic %q after a stale record, want %q", got, orig)
	}
}

// TestHostSysctlsLegacyLab: a lab made by an older lab kept the host's
// values in its own state directory. Brought down alone it restores them;
// when a newer lab started while it ran (and so recorded its changed
// values), its saved values still win, and the last down restores them.
func TestHostSysctlsLegacyLab(t *testing.T) {
	orig, changed, set, get := sysctlTest(t)
	legacy := func(t *testing.T) *Provider {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, legacySysctlFile), []byte(`{"kernel/panic":"`+orig+`"}`), 0o600); err != nil {
			t.Fatal(err)
		}
		return &Provider{stateDir: dir, sysctlRecord: filepath.Join(t.TempDir(), "record.json")}
	}

	t.Run("alone", func(t *testing.T) {
		old := legacy(t)
		set(changed) // its kubelets, before any record existed
		if err := old.restoreHostSysctls(); err != nil {
			t.Fatal(err)
		}
		if got := get(); got != orig {
			t.Errorf("kernel.panic %q after the old lab's down, want %q", got, orig)
		}
		if _, err := os.Stat(filepath.Join(old.stateDir, legacySysctlFile)); !os.IsNotExist(err) {
			t.Error("the old lab's file is still there")
		}
	})

	t.Run("with a newer lab", func(t *testing.T) {
		old := legacy(t)
		set(changed)
		b := &Provider{stateDir: t.TempDir(), sysctlRecord: old.sysctlRecord}
		if err := b.saveHostSysctls(); err != nil { // records the changed value
			t.Fatal(err)
		}
		if err := old.restoreHostSysctls(); err != nil {
			t.Fatal(err)
		}
		if got := get(); got != changed {
			t.Errorf("the old lab's down set kernel.panic to %q while lab b runs, want %q left", got, changed)
		}
		if err := b.restoreHostSysctls(); err != nil {
			t.Fatal(err)
		}
		if got := get(); got != orig {
			t.Errorf("after the last down kernel.panic is %q, want the host's %q", got, orig)
		}
	})
}
