package artifacts

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"time"
)

// SourceBuild is the artifact source that builds everything from source.
const SourceBuild = "build"

// DefaultImageRepository is kubeadm's default image repository.
const DefaultImageRepository = "registry.k8s.io"

// CNIPluginsVersion is the containernetworking/plugins release the CNI
// loopback plugin is built from. containerd's CRI plugin sets up every
// pod's loopback interface with it, whatever the pod network.
const CNIPluginsVersion = "v1.6.2"

// recipe changes whenever Build makes its artifacts differently in a way
// its inputs do not show, so that old Sets are not reused.
const recipe = "1"

//go:embed pause/main.go
var pauseSource []byte

// kubernetesCommands are built from k8s.io/kubernetes: the three node
// programs and the four programs of kubeadm's images.
var kubernetesCommands = []string{
	"kubeadm", "kubelet", "kubectl",
	"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy",
}

// nodeBinaries are the programs installed on every node, and where.
var nodeBinaries = map[string]string{
	"kubeadm":  "/usr/bin/kubeadm",
	"kubelet":  "/usr/bin/kubelet",
	"kubectl":  "/usr/bin/kubectl",
	"loopback": "/opt/cni/bin/loopback",
}

// BuildOptions configure Build.
type BuildOptions struct {
	// Version is the Kubernetes version, e.g. v1.34.12.
	Version string
	// Arch is the nodes' architecture. Default: this machine's.
	Arch string
	// ImageRepository is the repository kubeadm names its images in.
	// Default: registry.k8s.io.
	ImageRepository string
	// Userland is a Debian root file system as a tarball (the container
	// node image's, kept in Layout.NodeImageDir). kube-proxy runs iptables,
	// so its image carries Debian's iptables, as the upstream image does.
	Userland string
	// Go is the go command. Default: "go" on PATH.
	Go string
	// Force rebuilds even when the cache has the Set.
	Force bool
	// Log receives the build's progress and the go command's output.
	Log io.Writer
}

// checkVersion refuses anything but a release version: the version names
// cache directories and download paths.
func checkVersion(v string) error {
	if !regexp.MustCompile(`^v1\.[0-9]+\.[0-9]+$`).MatchString(v) {
		return fmt.Errorf("Kubernetes version %q is not a release version like v1.34.12", v)
	}
	return nil
}

func (o *BuildOptions) setDefaults() error {
	if err := checkVersion(o.Version); err != nil {
		return fmt.Errorf("build artifacts: %w", err)
	}
	if o.Arch == "" {
		o.Arch = runtime.GOARCH
	}
	if o.ImageRepository == "" {
		o.ImageRepository = DefaultImageRepository
	}
	if o.Go == "" {
		o.Go = "go"
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Userland == "" {
		return errors.New("build artifacts: no Debian root file system to take kube-proxy's iptables from (build the node image first: lab image build)")
	}
	return nil
}

// Build returns the `build` Set for o.Version: from the cache when it is
// there and intact, else built from source through the Go module proxy —
// Kubernetes' programs from k8s.io/kubernetes, etcd and CoreDNS at the
// versions that Kubernetes release's kubeadm asks for, the CNI loopback
// plugin, and lab's own pause — and then packed into images FROM scratch,
// named exactly as `kubeadm config images list` prints them. cached
// reports whether nothing had to be built.
func (c Cache) Build(ctx context.Context, o BuildOptions) (set *Set, cached bool, err error) {
	if err := o.setDefaults(); err != nil {
		return nil, false, err
	}
	goVersion, err := output(ctx, "", nil, o.Go, "env", "GOVERSION")
	if err != nil {
		return nil, false, fmt.Errorf("build artifacts: the go command: %w", err)
	}
	userland, err := os.Stat(o.Userland)
	if err != nil {
		return nil, false, fmt.Errorf("build artifacts: Debian root file system: %w", err)
	}
	inputs := map[string]string{
		"recipe":          recipe,
		"source":          SourceBuild,
		"kubernetes":      o.Version,
		"arch":            o.Arch,
		"imageRepository": o.ImageRepository,
		"go":              strings.TrimSpace(goVersion),
		"cniPlugins":      CNIPluginsVersion,
		"pause":           digestOf(pauseSource),
		"userland":        fmt.Sprintf("%s %d", filepath.Base(o.Userland), userland.Size()),
	}
	return c.make(o.Version, inputs, o.Force, o.Log, func(s *Set, work string) error {
		b := &builder{o: o, work: work, out: filepath.Join(work, "out")}
		if err := os.MkdirAll(b.out, 0o755); err != nil {
			return err
		}
		if err := b.build(ctx, s); err != nil {
			return fmt.Errorf("build artifacts %s: %w", o.Version, err)
		}
		return nil
	})
}

// make returns the Set of version made from inputs: the cached one when
// it is there and intact (unless force), else the one fill makes in a
// scratch directory, stored once fill has put every blob in place. The
// version directory stays locked throughout, so that two lab commands
// never make the same Set at once; the second finds the first one's.
func (c Cache) make(version string, inputs map[string]string, force bool, log io.Writer, fill func(s *Set, work string) error) (*Set, bool, error) {
	key := inputKey(inputs)
	dir := c.versionDir(version)
	unlock, err := lock(dir)
	if err != nil {
		return nil, false, err
	}
	defer unlock()
	if !force {
		if s, err := c.Load(version, key); err == nil {
			return s, true, nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(log, "artifacts: making the set again: %v\n", err)
		}
	}
	// Scratch directories of runs that were killed: nobody else can be
	// using them while the lock is held.
	for _, pattern := range []string{"build-*", "work-*", "release-*"} {
		stale, _ := filepath.Glob(filepath.Join(dir, pattern))
		for _, d := range stale {
			os.RemoveAll(d)
		}
	}
	work, err := os.MkdirTemp(dir, "work-")
	if err != nil {
		return nil, false, fmt.Errorf("artifact cache: %w", err)
	}
	defer os.RemoveAll(work)
	s := &Set{Version: version, Arch: inputs["arch"], Source: inputs["source"], Key: key, Inputs: inputs, dir: dir}
	if err := fill(s, work); err != nil {
		return nil, false, err
	}
	if err := c.store(s); err != nil {
		return nil, false, err
	}
	return s, false, nil
}

func digestOf(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// inputKey hashes the inputs in a stable order.
func inputKey(inputs map[string]string) string {
	keys := make([]string, 0, len(inputs))
	for k := range inputs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%s=%s\n", k, inputs[k])
	}
	return hex.EncodeToString(h.Sum(nil))[:20]
}

// builder holds one build's scratch space.
type builder struct {
	o    BuildOptions
	work string // scratch modules
	out  string // built programs
}

func (b *builder) logf(format string, args ...any) {
	fmt.Fprintf(b.o.Log, "artifacts: "+format+"\n", args...)
}

// build makes every artifact of s.
func (b *builder) build(ctx context.Context, s *Set) error {
	start := time.Now()
	if err := b.kubernetes(ctx); err != nil {
		return err
	}
	refs, err := b.imageList(ctx)
	if err != nil {
		return err
	}
	images := map[string]string{} // image name → ref
	for _, ref := range refs {
		images[imageName(ref)] = ref
	}
	etcdTag := tagOf(images["etcd"])
	dnsTag := tagOf(images["coredns"])
	pauseTag := tagOf(images["pause"])
	if etcdTag == "" || dnsTag == "" || pauseTag == "" {
		return fmt.Errorf("kubeadm lists no etcd, coredns or pause image: %v", refs)
	}
	// kubeadm tags etcd images with a revision: 3.6.5-0 is etcd v3.6.5.
	etcdVersion := "v" + strings.SplitN(etcdTag, "-", 2)[0]
	steps := []struct {
		bin, module, version, pkg, ldflags string
	}{
		{"etcd", "go.etcd.io/etcd/server/v3", etcdVersion, "go.etcd.io/etcd/server/v3", ""},
		{"coredns", "github.com/coredns/coredns", dnsTag, "github.com/coredns/coredns",
			"-X github.com/coredns/coredns/coremain.GitCommit=" + dnsTag},
		{"loopback", "github.com/containernetworking/plugins", CNIPluginsVersion, "github.com/containernetworking/plugins/plugins/main/loopback", ""},
	}
	for _, st := range steps {
		t := time.Now()
		mod, err := b.module(ctx, st.bin, "", st.module+"@"+st.version)
		if err != nil {
			return err
		}
		if err := b.goBuild(ctx, mod, b.o.Arch, st.ldflags, filepath.Join(b.out, st.bin), st.pkg); err != nil {
			return err
		}
		b.logf("built %s %s in %s", st.bin, st.version, time.Since(t).Round(time.Second))
	}
	t := time.Now()
	mod, err := b.module(ctx, "pause", "", "")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(mod, "main.go"), pauseSource, 0o644); err != nil {
		return err
	}
	if err := b.goBuild(ctx, mod, b.o.Arch, "-X main.version="+pauseTag, filepath.Join(b.out, "pause"), "."); err != nil {
		return err
	}
	b.logf("built pause %s in %s", pauseTag, time.Since(t).Round(time.Second))

	for _, name := range sortedKeys(nodeBinaries) {
		src := filepath.Join(b.out, name)
		digest, size, err := putBlob(s.dir, src)
		if err != nil {
			return err
		}
		s.Binaries = append(s.Binaries, Binary{Name: name, Path: nodeBinaries[name], Digest: digest, Size: size})
	}

	t = time.Now()
	userland, err := b.iptables()
	if err != nil {
		return err
	}
	for _, ref := range refs {
		spec, controlPlane, err := b.imageSpec(ref, userland)
		if err != nil {
			return err
		}
		im, err := storeImage(s.dir, b.work, spec)
		if err != nil {
			return err
		}
		im.ControlPlane = controlPlane
		s.Images = append(s.Images, im)
	}
	b.logf("wrote %d images in %s; whole build %s", len(refs), time.Since(t).Round(time.Second), time.Since(start).Round(time.Second))
	return nil
}

// kubernetes builds kubernetesCommands into b.out, and a kubeadm for this
// machine when the nodes have another architecture.
func (b *builder) kubernetes(ctx context.Context) error {
	t := time.Now()
	v := b.o.Version
	replaces, err := b.stagingReplaces(ctx)
	if err != nil {
		return err
	}
	mod, err := b.module(ctx, "kubernetes", replaces, "k8s.io/kubernetes@"+v)
	if err != nil {
		return err
	}
	parts := strings.SplitN(strings.TrimPrefix(v, "v"), ".", 3)
	var ld []string
	for _, pkg := range []string{"k8s.io/component-base/version", "k8s.io/client-go/pkg/version"} {
		ld = append(ld,
			"-X "+pkg+".gitVersion="+v,
			"-X "+pkg+".gitMajor="+parts[0],
			"-X "+pkg+".gitMinor="+parts[1],
			"-X "+pkg+".gitTreeState=clean",
			"-X "+pkg+".buildDate=1970-01-01T00:00:00Z")
	}
	var pkgs []string
	for _, c := range kubernetesCommands {
		pkgs = append(pkgs, "k8s.io/kubernetes/cmd/"+c)
	}
	if err := b.goBuild(ctx, mod, b.o.Arch, strings.Join(ld, " "), b.out+"/", pkgs...); err != nil {
		return err
	}
	if b.o.Arch != runtime.GOARCH {
		host := filepath.Join(b.work, "host")
		if err := b.goBuild(ctx, mod, runtime.GOARCH, strings.Join(ld, " "), filepath.Join(host, "kubeadm"), "k8s.io/kubernetes/cmd/kubeadm"); err != nil {
			return err
		}
	}
	b.logf("built Kubernetes %s (%s) in %s", v, strings.Join(kubernetesCommands, ", "), time.Since(t).Round(time.Second))
	return nil
}

// imageList asks the kubeadm just built which images it runs.
func (b *builder) imageList(ctx context.Context) ([]string, error) {
	kubeadm := filepath.Join(b.out, "kubeadm")
	if b.o.Arch != runtime.GOARCH {
		kubeadm = filepath.Join(b.work, "host", "kubeadm")
	}
	return listImages(ctx, kubeadm, b.o.Version, b.o.ImageRepository)
}

// listImages asks a kubeadm binary which images the version runs, named
// in repository, exactly as kubeadm and the kubelet will ask for them.
func listImages(ctx context.Context, kubeadm, version, repository string) ([]string, error) {
	out, err := output(ctx, "", nil, kubeadm, "config", "images", "list",
		"--kubernetes-version", version, "--image-repository", repository)
	if err != nil {
		return nil, fmt.Errorf("kubeadm config images list: %w", err)
	}
	refs := strings.Fields(out)
	if len(refs) == 0 {
		return nil, errors.New("kubeadm config images list printed nothing")
	}
	return refs, nil
}

// stagingReplaces reads k8s.io/kubernetes' own go.mod at the version and
// returns the replace block that makes it importable: each staging module
// (k8s.io/api, ...), which k8s.io/kubernetes requires as v0.0.0, pinned to
// its published v0.<minor>.<patch>.
func (b *builder) stagingReplaces(ctx context.Context) (string, error) {
	mod, err := b.module(ctx, "kubernetes-gomod", "", "")
	if err != nil {
		return "", err
	}
	out, err := output(ctx, mod, b.env(runtime.GOARCH), b.o.Go, "mod", "download", "-json", "k8s.io/kubernetes@"+b.o.Version)
	if err != nil {
		return "", fmt.Errorf("go mod download k8s.io/kubernetes@%s: %w", b.o.Version, err)
	}
	var info struct{ GoMod, Error string }
	if err := json.Unmarshal([]byte(out), &info); err != nil || info.GoMod == "" {
		return "", fmt.Errorf("go mod download k8s.io/kubernetes@%s: %s", b.o.Version, info.Error)
	}
	gomod, err := os.ReadFile(info.GoMod)
	if err != nil {
		return "", err
	}
	staging := "v0." + strings.SplitN(strings.TrimPrefix(b.o.Version, "v"), ".", 2)[1]
	re := regexp.MustCompile(`(?m)^\s*(k8s\.io/[a-z0-9.-]+)\s+=>\s+\./staging/`)
	var lines []string
	for _, m := range re.FindAllStringSubmatch(string(gomod), -1) {
		lines = append(lines, "\t"+m[1]+" => "+m[1]+" "+staging)
	}
	if len(lines) == 0 {
		return "", fmt.Errorf("k8s.io/kubernetes@%s: go.mod has no staging replace lines", b.o.Version)
	}
	return "replace (\n" + strings.Join(lines, "\n") + "\n)\n", nil
}

// module makes a scratch module called name with the given replace block
// and, if require is set, `go get`s it (always at a pinned version: an
// unpinned get of k8s.io/kubernetes jumps to the newest release).
func (b *builder) module(ctx context.Context, name, replaces, require string) (string, error) {
	dir := filepath.Join(b.work, "mod-"+name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	gomod := "module lab.local/artifacts/" + name + "\n\ngo 1.22\n\n" + replaces
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(gomod), 0o644); err != nil {
		return "", err
	}
	if require != "" {
		if _, err := output(ctx, dir, b.env(runtime.GOARCH), b.o.Go, "get", require); err != nil {
			return "", fmt.Errorf("go get %s: %w", require, err)
		}
	}
	return dir, nil
}

// goBuild builds static, stripped, reproducible programs: no cgo, no
// local paths, no VCS stamps.
func (b *builder) goBuild(ctx context.Context, dir, arch, ldflags, out string, pkgs ...string) error {
	args := []string{"build", "-trimpath", "-buildvcs=false", "-o", out, "-ldflags", strings.TrimSpace("-s -w " + ldflags)}
	args = append(args, pkgs...)
	if _, err := output(ctx, dir, b.env(arch), b.o.Go, args...); err != nil {
		return fmt.Errorf("go build %s: %w", strings.Join(pkgs, " "), err)
	}
	return nil
}

// env is the go command's environment for a build for arch.
func (b *builder) env(arch string) []string {
	return append(os.Environ(),
		"CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch, "GOWORK=off",
		"GOFLAGS="+strings.TrimSpace(os.Getenv("GOFLAGS")+" -mod=mod"))
}

// imageSpec lays out the image ref names: the program on PATH (kubeadm's
// manifests run bare `kube-apiserver`, `etcd`, ...), and for the images
// kubeadm starts without a command (CoreDNS, pause) an entrypoint.
func (b *builder) imageSpec(ref string, iptables []layerEntry) (spec imageSpec, controlPlane bool, err error) {
	name := imageName(ref)
	spec = imageSpec{
		Ref:  ref,
		Arch: b.o.Arch,
		Env:  []string{"PATH=/usr/local/bin:/usr/local/sbin:/usr/bin:/usr/sbin:/bin:/sbin"},
		Files: []layerEntry{
			{Name: "tmp", Mode: 0o777 | fs.ModeSticky, Dir: true},
		},
	}
	bin := func(dst string) layerEntry {
		return layerEntry{Name: dst, Mode: 0o755, Src: filepath.Join(b.out, name)}
	}
	controlPlane = controlPlaneImage(ref)
	switch name {
	case "kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd":
		spec.Files = append(spec.Files, bin("usr/local/bin/"+name))
	case "kube-proxy":
		spec.Files = append(spec.Files, bin("usr/local/bin/"+name))
		spec.Files = append(spec.Files, iptables...)
	case "coredns":
		spec.Files = append(spec.Files, bin("coredns"))
		spec.Entrypoint = []string{"/coredns"}
	case "pause":
		spec.Files = append(spec.Files, bin("pause"))
		spec.Entrypoint = []string{"/pause"}
	default:
		return spec, false, fmt.Errorf("kubeadm asks for image %s, which the build source does not know how to make", ref)
	}
	return spec, controlPlane, nil
}

// storeImage writes the image spec describes as a docker-archive in work
// and moves it into the blobs of the cache directory dir.
func storeImage(dir, work string, spec imageSpec) (Image, error) {
	tarball := filepath.Join(work, imageName(spec.Ref)+".tar")
	id, err := writeImage(tarball, work, spec)
	if err != nil {
		return Image{}, err
	}
	digest, size, err := putBlob(dir, tarball)
	if err != nil {
		return Image{}, err
	}
	return Image{Ref: spec.Ref, Digest: digest, Size: size, ID: id}, nil
}

// controlPlaneImage reports whether only control planes run ref's image.
func controlPlaneImage(ref string) bool {
	switch imageName(ref) {
	case "kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd":
		return true
	}
	return false
}

// imageName is the last path element of a reference without its tag:
// registry.k8s.io/coredns/coredns:v1.12.1 → coredns.
func imageName(ref string) string {
	name := ref
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		name = name[:i]
	}
	return path.Base(name)
}

func tagOf(ref string) string {
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		return ref[i+1:]
	}
	return ""
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// output runs a command and returns its standard output; an error quotes
// the end of its standard error.
func output(ctx context.Context, dir string, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, lastLines(stderr.String(), 20))
	}
	return stdout.String(), nil
}

func lastLines(s string, n int) string {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
