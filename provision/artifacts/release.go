package artifacts

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/labctl/lab/provision/fetch"
)

// SourceRelease is the artifact source that gathers Kubernetes' official
// release downloads and images.
const SourceRelease = "release"

// Where Kubernetes and the CNI plugins publish their releases.
const (
	// DefaultReleaseURL serves <version>/bin/linux/<arch>/<program>, each
	// with a <program>.sha256 beside it.
	DefaultReleaseURL = "https://dl.k8s.io/release"
	// DefaultCNIPluginsURL serves
	// <version>/cni-plugins-linux-<arch>-<version>.tgz and its .sha256.
	DefaultCNIPluginsURL = "https://github.com/containernetworking/plugins/releases/download"
)

// releaseRecipe changes whenever Release gathers its artifacts differently.
const releaseRecipe = "1"

// releaseParallel is how many downloads and image pulls run at once: enough
// to hide latency, few enough not to trip registry rate limits.
const releaseParallel = 4

// ReleaseOptions configure Release.
type ReleaseOptions struct {
	// Version is the Kubernetes version, e.g. v1.34.12.
	Version string
	// Arch is the nodes' architecture. Default: this machine's.
	Arch string
	// ImageRepository is where the images are pulled from, and the name
	// kubeadm gives them. Default: registry.k8s.io.
	ImageRepository string
	// ReleaseURL and CNIPluginsURL are the download sites, or mirrors laid
	// out the same way. Defaults: DefaultReleaseURL, DefaultCNIPluginsURL.
	ReleaseURL    string
	CNIPluginsURL string
	// Keychain authenticates to registries. Default: the Docker config's
	// credentials (authn.DefaultKeychain), anonymous where it has none.
	Keychain authn.Keychain
	// Force gathers again even when the cache has the Set.
	Force bool
	// Log receives progress.
	Log io.Writer
}

func (o *ReleaseOptions) setDefaults() error {
	if err := checkVersion(o.Version); err != nil {
		return fmt.Errorf("release artifacts: %w", err)
	}
	if o.Arch == "" {
		o.Arch = runtime.GOARCH
	}
	if o.ImageRepository == "" {
		o.ImageRepository = DefaultImageRepository
	}
	if o.ReleaseURL == "" {
		o.ReleaseURL = DefaultReleaseURL
	}
	if o.CNIPluginsURL == "" {
		o.CNIPluginsURL = DefaultCNIPluginsURL
	}
	o.ReleaseURL = strings.TrimRight(o.ReleaseURL, "/")
	o.CNIPluginsURL = strings.TrimRight(o.CNIPluginsURL, "/")
	if o.Keychain == nil {
		o.Keychain = authn.DefaultKeychain
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	return nil
}

// Release returns the `release` Set for o.Version: from the cache when it
// is there and intact, else gathered once on this machine — kubeadm,
// kubelet and kubectl from the official downloads, each verified against
// its published .sha256 before it is kept; the CNI loopback plugin from
// the containernetworking release archive, verified the same way; and the
// images `kubeadm config images list` names, pulled for the nodes'
// architecture and saved as docker-archive tarballs that `ctr images
// import` reads. cached reports whether nothing had to be fetched.
func (c Cache) Release(ctx context.Context, o ReleaseOptions) (set *Set, cached bool, err error) {
	if err := o.setDefaults(); err != nil {
		return nil, false, err
	}
	inputs := map[string]string{
		"recipe":          releaseRecipe,
		"source":          SourceRelease,
		"kubernetes":      o.Version,
		"arch":            o.Arch,
		"imageRepository": o.ImageRepository,
		"releaseURL":      o.ReleaseURL,
		"cniPluginsURL":   o.CNIPluginsURL,
		"cniPlugins":      CNIPluginsVersion,
	}
	return c.make(o.Version, inputs, o.Force, o.Log, func(s *Set, work string) error {
		g := &gatherer{o: o, work: work}
		if err := g.gather(ctx, s); err != nil {
			return fmt.Errorf("release artifacts %s: %w", o.Version, err)
		}
		return nil
	})
}

// gatherer does one Release.
type gatherer struct {
	o    ReleaseOptions
	work string
}

func (g *gatherer) logf(format string, args ...any) {
	fmt.Fprintf(g.o.Log, "artifacts: "+format+"\n", args...)
}

// download fetches url to dst through go-getter, verified against the
// checksum file sumURL.
func (g *gatherer) download(ctx context.Context, url, sumURL, dst string) error {
	t := time.Now()
	if err := fetch.File(ctx, url+"?archive=false&checksum=file:"+sumURL, dst); err != nil {
		return err
	}
	if fi, err := os.Stat(dst); err == nil {
		g.logf("downloaded %s (%.1f MiB, checksum verified) in %s", filepath.Base(dst), float64(fi.Size())/(1<<20), time.Since(t).Round(100*time.Millisecond))
	}
	return nil
}

// programURL is where the release publishes program for arch.
func (g *gatherer) programURL(arch, program string) string {
	return fmt.Sprintf("%s/%s/bin/linux/%s/%s", g.o.ReleaseURL, g.o.Version, arch, program)
}

func (g *gatherer) gather(ctx context.Context, s *Set) error {
	start := time.Now()
	out := filepath.Join(g.work, "out")
	type job struct{ url, sum, dst string }
	var jobs []job
	for _, p := range []string{"kubeadm", "kubelet", "kubectl"} {
		u := g.programURL(g.o.Arch, p)
		jobs = append(jobs, job{u, u + ".sha256", filepath.Join(out, p)})
	}
	cni := fmt.Sprintf("%s/%s/cni-plugins-linux-%s-%s.tgz", g.o.CNIPluginsURL, CNIPluginsVersion, g.o.Arch, CNIPluginsVersion)
	cniArchive := filepath.Join(g.work, filepath.Base(cni))
	jobs = append(jobs, job{cni, cni + ".sha256", cniArchive})
	// kubeadm lists the images; the nodes' kubeadm cannot run here when
	// their architecture differs, so this machine's is fetched as well.
	kubeadm := filepath.Join(out, "kubeadm")
	if g.o.Arch != runtime.GOARCH {
		kubeadm = filepath.Join(g.work, "host", "kubeadm")
		u := g.programURL(runtime.GOARCH, "kubeadm")
		jobs = append(jobs, job{u, u + ".sha256", kubeadm})
	}
	err := parallel(ctx, len(jobs), func(ctx context.Context, i int) error {
		return g.download(ctx, jobs[i].url, jobs[i].sum, jobs[i].dst)
	})
	if err != nil {
		return err
	}
	if err := fetch.Extract(cniArchive, "loopback", filepath.Join(out, "loopback")); err != nil {
		return fmt.Errorf("%s: %w", filepath.Base(cni), err)
	}
	if err := os.Chmod(kubeadm, 0o755); err != nil {
		return err
	}
	refs, err := listImages(ctx, kubeadm, g.o.Version, g.o.ImageRepository)
	if err != nil {
		return err
	}
	for _, bin := range sortedKeys(nodeBinaries) {
		digest, size, err := putBlob(s.dir, filepath.Join(out, bin))
		if err != nil {
			return err
		}
		s.Binaries = append(s.Binaries, Binary{Name: bin, Path: nodeBinaries[bin], Digest: digest, Size: size})
	}

	s.Images = make([]Image, len(refs))
	err = parallel(ctx, len(refs), func(ctx context.Context, i int) error {
		im, err := g.pull(ctx, refs[i], s.dir)
		if err != nil {
			return fmt.Errorf("image %s: %w", refs[i], err)
		}
		s.Images[i] = im
		return nil
	})
	if err != nil {
		return err
	}
	g.logf("gathered Kubernetes %s for %s: %d programs, %d images in %s", g.o.Version, g.o.Arch, len(s.Binaries), len(s.Images), time.Since(start).Round(100*time.Millisecond))
	return nil
}

// pull fetches ref's image for the nodes' platform and keeps it as a
// docker-archive tarball in dir. The image's manifest digest is recorded
// so the Set says exactly what was pulled.
func (g *gatherer) pull(ctx context.Context, ref, dir string) (Image, error) {
	t := time.Now()
	tag, err := name.NewTag(ref)
	if err != nil {
		return Image{}, err
	}
	img, err := remote.Image(tag,
		remote.WithContext(ctx),
		remote.WithPlatform(v1.Platform{OS: "linux", Architecture: g.o.Arch}),
		remote.WithAuthFromKeychain(g.o.Keychain),
	)
	if err != nil {
		return Image{}, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return Image{}, err
	}
	// A registry that has no image for the platform answers with another
	// one; kubelet would then fail to run it with "exec format error".
	if cfg.Architecture != g.o.Arch {
		return Image{}, fmt.Errorf("the registry has it for %s/%s, not linux/%s", cfg.OS, cfg.Architecture, g.o.Arch)
	}
	id, err := img.ConfigName()
	if err != nil {
		return Image{}, err
	}
	manifest, err := img.Digest()
	if err != nil {
		return Image{}, err
	}
	f, err := os.CreateTemp(g.work, imageName(ref)+"-*.tar")
	if err != nil {
		return Image{}, err
	}
	f.Close()
	if err := tarball.WriteToFile(f.Name(), tag, img); err != nil {
		return Image{}, err
	}
	digest, size, err := putBlob(dir, f.Name())
	if err != nil {
		return Image{}, err
	}
	g.logf("pulled %s (%.1f MiB) in %s", ref, float64(size)/(1<<20), time.Since(t).Round(100*time.Millisecond))
	return Image{
		Ref:          ref,
		Digest:       digest,
		Size:         size,
		ID:           id.String(),
		ControlPlane: controlPlaneImage(ref),
		Pulled:       tag.Context().Digest(manifest.String()).String(),
	}, nil
}

// parallel runs do(0..n-1), releaseParallel at a time, and returns the
// first error; the others are cancelled through ctx.
func parallel(ctx context.Context, n int, do func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	sem := make(chan struct{}, releaseParallel)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			if err := do(ctx, i); err != nil {
				once.Do(func() { first = err; cancel() })
			}
		}()
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return first
}
