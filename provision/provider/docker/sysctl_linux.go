package docker

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/labctl/lab/internal/atomicfile"
	"github.com/labctl/lab/internal/filelock"
)

// hostSysctls are machine-wide settings that kubelets in container nodes
// change: /proc/sys is not namespaced for them, so a lab on container nodes
// changes the host. The provider records the host's values before the
// first lab creates a node and puts them back when the last lab is deleted.
var hostSysctls = []string{"vm/overcommit_memory", "kernel/panic", "kernel/panic_on_oops"}

// legacySysctlFile is where lab kept one lab's saved values before the
// record was shared; still read so that labs made then restore on down.
const legacySysctlFile = "host-sysctls.json"

// sysctlRecord is the host-wide record: the values before any lab, and the
// labs (state directories) whose kubelets may rely on the changed ones.
// One record serves every lab, so a second lab does not take the first
// one's changes for the host's own values, and the first lab's down does
// not pull them from under the second lab's kubelets.
type sysctlRecord struct {
	// BootID ties the record to one boot: the kernel forgets sysctls on
	// reboot, and so must the record.
	BootID string            `json:"bootID"`
	Values map[string]string `json:"values"`
	Labs   []string          `json:"labs"`
}

// DefaultSysctlRecord is where the record lives: the per-boot runtime
// directory (/run for root, $XDG_RUNTIME_DIR for others), else the
// temporary directory, where the boot ID guards against stale records.
func DefaultSysctlRecord() string {
	var dir string
	switch {
	case os.Geteuid() == 0:
		dir = "/run"
	case os.Getenv("XDG_RUNTIME_DIR") != "":
		dir = os.Getenv("XDG_RUNTIME_DIR")
	default:
		dir = filepath.Join(os.TempDir(), fmt.Sprintf("lab-%d", os.Geteuid()))
	}
	return filepath.Join(dir, "lab", "docker-host-sysctls.json")
}

func bootID() string {
	b, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return strings.TrimSpace(string(b))
}

func readHostSysctls() map[string]string {
	values := map[string]string{}
	for _, k := range hostSysctls {
		if v, err := os.ReadFile(filepath.Join("/proc/sys", k)); err == nil {
			values[k] = strings.TrimSpace(string(v))
		}
	}
	return values
}

// withRecord runs fn on the record under an exclusive lock and writes back
// what fn returns (nil removes the record).
func (p *Provider) withRecord(fn func(r *sysctlRecord) *sysctlRecord) error {
	path := p.sysctlRecord
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	lock, err := filelock.Open(path+".lock", 0o600)
	if err != nil {
		return err
	}
	defer lock.Close()
	var r *sysctlRecord
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	default:
		r = new(sysctlRecord)
		if err := json.Unmarshal(data, r); err != nil {
			return fmt.Errorf("%s: %w (delete it if no lab runs)", path, err)
		}
	}
	next := fn(r)
	if next == nil {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	data, err = json.Marshal(next)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, data, 0o600)
}

// legacyValues are the host's values as a lab made by an older lab saved
// them in its own state directory, or nil. They were read before that
// lab's kubelets ran, so they are the host's own values, truer than a
// shared record written while that lab was running.
func (p *Provider) legacyValues() map[string]string {
	data, err := os.ReadFile(filepath.Join(p.stateDir, legacySysctlFile))
	if err != nil {
		return nil
	}
	var legacy map[string]string
	if json.Unmarshal(data, &legacy) != nil || len(legacy) == 0 {
		return nil
	}
	return legacy
}

// adoptLegacy makes the record (nil when there is none for this boot)
// account for a lab made by an older lab: its saved values are the
// host's own.
func (p *Provider) adoptLegacy(r *sysctlRecord) *sysctlRecord {
	legacy := p.legacyValues()
	if legacy == nil {
		return r
	}
	if r == nil {
		return &sysctlRecord{BootID: bootID(), Values: legacy, Labs: []string{p.stateDir}}
	}
	if !slices.Contains(r.Labs, p.stateDir) {
		r.Values = legacy
		r.Labs = append(r.Labs, p.stateDir)
	}
	return r
}

// saveHostSysctls records the host's values unless a lab already did, and
// counts this lab among those that rely on the changed ones.
func (p *Provider) saveHostSysctls() error {
	return p.withRecord(func(r *sysctlRecord) *sysctlRecord {
		if r != nil && r.BootID != bootID() {
			r = nil
		}
		if r = p.adoptLegacy(r); r == nil {
			r = &sysctlRecord{BootID: bootID(), Values: readHostSysctls()}
		}
		if !slices.Contains(r.Labs, p.stateDir) {
			r.Labs = append(r.Labs, p.stateDir)
		}
		return r
	})
}

// restoreHostSysctls takes this lab off the record and, when no other lab
// remains (labs whose state directory is gone are forgotten), puts the
// recorded values back.
func (p *Provider) restoreHostSysctls() error {
	var restore map[string]string
	err := p.withRecord(func(r *sysctlRecord) *sysctlRecord {
		if r != nil && r.BootID != bootID() {
			r = nil
		}
		if r = p.adoptLegacy(r); r == nil {
			return nil
		}
		var labs []string
		for _, l := range r.Labs {
			if _, err := os.Stat(l); l != p.stateDir && err == nil {
				labs = append(labs, l)
			}
		}
		if len(labs) > 0 {
			r.Labs = labs
			return r
		}
		restore = r.Values
		return nil
	})
	if err != nil {
		return err
	}
	var errs []error
	for k, v := range restore {
		cur, err := os.ReadFile(filepath.Join("/proc/sys", k))
		if err == nil && strings.TrimSpace(string(cur)) == v {
			continue
		}
		if err := os.WriteFile(filepath.Join("/proc/sys", k), []byte(v), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("restore %s=%s: %w", strings.ReplaceAll(k, "/", "."), v, err))
		}
	}
	if err := os.Remove(filepath.Join(p.stateDir, legacySysctlFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
