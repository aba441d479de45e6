// Package nodebin carries the lab-node binaries lab pushes to nodes, one
// per Linux architecture, embedded at build time (`make build` cross-compiles
// and gzips them first). lab can then hand an arm64 VM its datapath even
// when lab itself runs on macOS or on amd64.
package nodebin

import (
	"bytes"
	"compress/gzip"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
)

//go:embed bin
var embedded embed.FS

// ErrNotEmbedded means this lab binary was built without the lab-node
// builds (plain `go build`); callers fall back to files on disk.
var ErrNotEmbedded = errors.New("lab-node is not embedded in this build of lab (build it with make build)")

// LabNode returns the lab-node binary for a Linux architecture (amd64,
// arm64).
func LabNode(arch string) ([]byte, error) {
	gz, err := embedded.ReadFile("bin/lab-node-linux-" + arch + ".gz")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotEmbedded
	}
	if err != nil {
		return nil, err
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, fmt.Errorf("embedded lab-node for %s: %w", arch, err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("embedded lab-node for %s: %w", arch, err)
	}
	return data, nil
}
