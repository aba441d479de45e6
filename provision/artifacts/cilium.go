package artifacts

import (
	"context"
	"errors"
	"io"
	"path/filepath"
)

// CiliumRepository is where lab names the Cilium images it builds: never
// quay.io/cilium, so that nobody mistakes them for upstream's.
const CiliumRepository = "lab.local/cilium"

// CiliumImages are the references of the images the build source makes for
// one Cilium version, as the chart's image overrides name them.
type CiliumImages struct {
	Agent    string // cilium-agent, its init containers and cilium-dbg
	Operator string // cilium-operator-generic
	Relay    string // hubble-relay
}

// CiliumImageRefs returns the references of version's built images
// (version without "v", e.g. 1.18.1).
func CiliumImageRefs(version string) CiliumImages {
	tag := ":v" + version
	return CiliumImages{
		Agent:    CiliumRepository + "/cilium" + tag,
		Operator: CiliumRepository + "/operator-generic" + tag,
		Relay:    CiliumRepository + "/hubble-relay" + tag,
	}
}

// CiliumSet is what the build source made for one Cilium version: its
// images, and its Helm chart taken from the same module.
type CiliumSet struct {
	// Version is the Cilium version without "v", e.g. 1.18.1.
	Version string `json:"version"`
	Arch    string `json:"arch"`
	Source  string `json:"source"`
	Key     string `json:"key"`
	// Inputs records what the key covers, for people.
	Inputs map[string]string `json:"inputs"`
	Images []Image           `json:"images"`
	// Chart is the chart of install/kubernetes/cilium as a .tgz.
	Chart Blob `json:"chart"`

	dir string
}

// Blob is one file of the cache that is neither a program nor an image.
type Blob struct {
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
}

// Path is the local file holding the blob with the given digest.
func (s *CiliumSet) Path(digest string) string { return blobPath(s.dir, digest) }

// ChartPath is the local .tgz of the chart.
func (s *CiliumSet) ChartPath() string { return s.Path(s.Chart.Digest) }

// CiliumBuildOptions configure BuildCilium.
type CiliumBuildOptions struct {
	// Version is the Cilium version without "v", e.g. 1.18.1.
	Version string
	// Arch is the nodes' architecture. Default: this machine's.
	Arch string
	// Userland is the node image's Debian root file system as a tarball:
	// the agent image's userland (clang, iproute2, iptables, ...) is
	// taken from it.
	Userland string
	// Go is the go command. Default: "go" on PATH.
	Go string
	// Force rebuilds even when the cache has the set.
	Force bool
	// Log receives the build's progress.
	Log io.Writer
}

// ciliumDir holds the Cilium sets and their blobs, apart from the
// Kubernetes versions.
func (c Cache) ciliumDir(version string) string {
	return filepath.Join(c.Root, "cilium", "v"+version)
}

// BuildCilium returns the build source's set for o.Version: from the cache
// when it is there and intact, else built from github.com/cilium/cilium
// through the Go module proxy.
func (c Cache) BuildCilium(ctx context.Context, o CiliumBuildOptions) (*CiliumSet, bool, error) {
	return nil, false, errors.New("building Cilium is not implemented yet")
}
