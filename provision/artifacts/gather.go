package artifacts

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/labctl/lab/provision/labfile"
)

// GatherOptions say how to make a Set that is not in the cache yet.
type GatherOptions struct {
	// Userland returns the Debian root file system the build source takes
	// kube-proxy's iptables from; called only when a build is needed.
	Userland func() (string, error)
	// ReleaseURL and CNIPluginsURL point the release source at mirrors.
	ReleaseURL, CNIPluginsURL string
	// Log receives progress.
	Log io.Writer
}

// FindFor returns the Set a lab's kubernetes section asks for, for nodes of
// the Go architecture arch, when the cache holds it; an error wrapping
// fs.ErrNotExist when it does not. It never builds or downloads.
func (c Cache) FindFor(k *labfile.Kubernetes, arch string) (*Set, error) {
	return c.Find(queryFor(k, arch))
}

// queryFor is the Query of a lab's Kubernetes settings for nodes of arch.
func queryFor(k *labfile.Kubernetes, arch string) Query {
	return Query{Version: k.Version, Arch: arch, Source: k.Artifacts, ImageRepository: k.ImageRepository}
}

// GatherFor returns the Set a lab's kubernetes section asks for, for nodes
// of the Go architecture arch: from the cache, else made now by its
// artifact source (with its release mirrors). `lab up` and `lab bundle
// create` both gather through it, so a bundle holds the very Set up would
// use.
func (c Cache) GatherFor(ctx context.Context, k *labfile.Kubernetes, arch string, o GatherOptions) (set *Set, found bool, err error) {
	q := queryFor(k, arch)
	if r := k.Release; r != nil {
		o.ReleaseURL, o.CNIPluginsURL = r.URL, r.CNIPluginsURL
	}
	return c.Gather(ctx, q, o)
}

// Gather returns the Set q asks for: the newest one in the cache (made
// here or imported from a bundle), else one q.Source makes now. found
// reports whether it came from the cache.
func (c Cache) Gather(ctx context.Context, q Query, o GatherOptions) (set *Set, found bool, err error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	if s, err := c.Find(q); err == nil {
		return s, true, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(o.Log, "artifacts: %v; gathering them again\n", err)
	}
	switch q.Source {
	case SourceRelease:
		return c.Release(ctx, ReleaseOptions{
			Version: q.Version, Arch: q.Arch, ImageRepository: q.ImageRepository,
			ReleaseURL: o.ReleaseURL, CNIPluginsURL: o.CNIPluginsURL, Log: o.Log,
		})
	case SourceBuild:
		if o.Userland == nil {
			return nil, false, errors.New("build artifacts: no Debian root file system to take kube-proxy's iptables from")
		}
		userland, err := o.Userland()
		if err != nil {
			return nil, false, err
		}
		return c.Build(ctx, BuildOptions{
			Version: q.Version, Arch: q.Arch, ImageRepository: q.ImageRepository,
			Userland: userland, Log: o.Log,
		})
	}
	return nil, false, fmt.Errorf("artifact source %q gathers nothing on this machine (use release or build)", q.Source)
}
