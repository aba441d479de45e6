//go:build linux

package daemon

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/labctl/lab/cmd/lab-node/internal/cniplugin"
	"github.com/labctl/lab/internal/atomicfile"
)

// ConfFile is the name of the CNI network config lab-node writes. The "10-"
// puts it first for runtimes that take the first file in the directory.
const ConfFile = "10-lab.conflist"

// conflist is a CNI network configuration list with lab-node's plugin.
type conflist struct {
	CNIVersion string        `json:"cniVersion"`
	Name       string        `json:"name"`
	Plugins    []pluginEntry `json:"plugins"`
}

type pluginEntry struct {
	Type string `json:"type"`
	cniplugin.Settings
}

// WriteCNIConfig writes the network config atomically. Runtimes watch the
// directory and mark the node's network ready once a config appears, so it
// is written only when the datapath is in place.
func WriteCNIConfig(dir string, s cniplugin.Settings) (string, error) {
	l := conflist{CNIVersion: "1.0.0", Name: "lab", Plugins: []pluginEntry{{Type: cniplugin.PluginType, Settings: s}}}
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, ConfFile)
	if err := writeAtomic(path, append(b, '\n'), 0o600); err != nil {
		return "", fmt.Errorf("write CNI config: %w", err)
	}
	return path, nil
}

// InstallPlugin copies the running binary to dir/lab-node (the plugin is
// the same program), unless an identical copy is there.
func InstallPlugin(dir string) (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("install CNI plugin: %w", err)
	}
	b, err := os.ReadFile(self)
	if err != nil {
		return "", fmt.Errorf("install CNI plugin: %w", err)
	}
	dst := filepath.Join(dir, cniplugin.PluginType)
	if old, err := os.ReadFile(dst); err == nil && bytes.Equal(old, b) {
		return dst, nil
	}
	if err := writeAtomic(dst, b, 0o755); err != nil {
		return "", fmt.Errorf("install CNI plugin: %w", err)
	}
	return dst, nil
}

// writeAtomic writes atomically, so that no reader (a runtime, a CNI
// invocation) ever sees half a file, into a directory it creates first: a
// fresh node may not have the CNI directories yet.
func writeAtomic(path string, b []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, b, mode)
}
