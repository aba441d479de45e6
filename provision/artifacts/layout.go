package artifacts

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
)

// Layout is lab's cache directory (--cache-dir) as far as gathered
// artifacts go. The artifact cache and the node image's cache sit side by
// side under one root, laid out as a bundle is, so that importing a bundle
// is copying its files into place:
//
//	<root>/artifacts/   the artifact Cache
//	<root>/nodeimage/   the node image's packages and Debian root file system
//
// Everything that finds these directories asks a Layout, so the layout is
// spelled out here only.
type Layout struct {
	Root string
}

// The directories under a Layout's root, which are also a bundle's top
// directories.
const (
	artifactsDir = "artifacts"
	nodeImageDir = "nodeimage"
)

// NewLayout is the layout under cacheDir, or, when cacheDir is "", under
// the user's cache directory: $XDG_CACHE_HOME/lab, usually ~/.cache/lab.
func NewLayout(cacheDir string) (Layout, error) {
	if cacheDir != "" {
		return Layout{Root: cacheDir}, nil
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		return Layout{}, fmt.Errorf("cache directory: %w", err)
	}
	return Layout{Root: filepath.Join(dir, "lab")}, nil
}

// ArtifactsDir is the root of the artifact cache.
func (l Layout) ArtifactsDir() string { return filepath.Join(l.Root, artifactsDir) }

// Cache is the artifact cache.
func (l Layout) Cache() Cache { return Cache{Root: l.ArtifactsDir()} }

// NodeImageDir is the node image's cache: the Debian packages and root
// file system the docker provider's node image is made of. The build
// source takes kube-proxy's iptables from that root file system too.
func (l Layout) NodeImageDir() string { return filepath.Join(l.Root, nodeImageDir) }

// NodeImageExtra is a file of the node image's cache (src, a file in
// NodeImageDir) as it travels in a bundle.
func NodeImageExtra(src string) Extra {
	return Extra{Path: path.Join(nodeImageDir, filepath.Base(src)), Src: src}
}
