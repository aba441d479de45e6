package docker

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// hostSysctls are machine-wide settings that kubelets in container nodes
// change: /proc/sys is not namespaced for them, so a lab on container nodes
// changes the host. The provider saves them before it creates the first
// node of a lab and puts them back when it deletes the lab.
var hostSysctls = []string{"vm/overcommit_memory", "kernel/panic", "kernel/panic_on_oops"}

const sysctlFile = "host-sysctls.json"

// saveHostSysctls records the host's values once per lab (a later Create
// must not record values a running kubelet already changed).
func (p *Provider) saveHostSysctls() error {
	path := filepath.Join(p.stateDir, sysctlFile)
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	saved := map[string]string{}
	for _, k := range hostSysctls {
		if v, err := os.ReadFile(filepath.Join("/proc/sys", k)); err == nil {
			saved[k] = strings.TrimSpace(string(v))
		}
	}
	data, err := json.Marshal(saved)
	if err != nil {
		return err
	}
	return writeFile(path, data)
}

// restoreHostSysctls puts back what saveHostSysctls recorded.
func (p *Provider) restoreHostSysctls() error {
	path := filepath.Join(p.stateDir, sysctlFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var saved map[string]string
	if err := json.Unmarshal(data, &saved); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	var errs []error
	for k, v := range saved {
		cur, err := os.ReadFile(filepath.Join("/proc/sys", k))
		if err == nil && strings.TrimSpace(string(cur)) == v {
			continue
		}
		if err := os.WriteFile(filepath.Join("/proc/sys", k), []byte(v), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("restore %s=%s: %w", strings.ReplaceAll(k, "/", "."), v, err))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return os.Remove(path)
}
