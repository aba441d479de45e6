package artifacts

import (
	"github.com/labctl/lab/provision/fetch"

	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// ciliumProgram is one program of a Cilium image: the package it is built
// from and where it goes in the image.
type ciliumProgram struct {
	Pkg  string // relative to the module, e.g. ./daemon
	Path string // in the image, without a leading slash
	// Tags are added to osusergo, as upstream's Makefiles add them.
	Tags string
}

// Name is the program's file name.
func (p ciliumProgram) Name() string { return path.Base(p.Path) }

// The programs of each image, where upstream's images/*/Dockerfile and the
// Makefiles of the module's directories put them. The agent image is
// upstream's less Envoy (cilium-envoy is a C++ program of another
// repository) and gops.
var (
	agentPrograms = []ciliumProgram{
		{Pkg: "./daemon", Path: "usr/bin/cilium-agent"},
		{Pkg: "./cilium-dbg", Path: "usr/bin/cilium-dbg"},
		{Pkg: "./cilium-health", Path: "usr/bin/cilium-health"},
		{Pkg: "./cilium-health/responder", Path: "usr/bin/cilium-health-responder"},
		{Pkg: "./tools/mount", Path: "usr/bin/cilium-mount"},
		{Pkg: "./tools/sysctlfix", Path: "usr/bin/cilium-sysctlfix"},
		{Pkg: "./bugtool", Path: "usr/bin/cilium-bugtool"},
		{Pkg: "./plugins/cilium-cni", Path: "opt/cni/bin/cilium-cni"},
		{Pkg: "./hubble", Path: "usr/bin/hubble"},
	}
	// operator/Makefile builds cilium-operator-generic with this tag.
	operatorPrograms = []ciliumProgram{{Pkg: "./operator", Path: "usr/bin/cilium-operator-generic", Tags: "ipam_provider_operator"}}
	relayPrograms    = []ciliumProgram{{Pkg: "./hubble-relay", Path: "usr/bin/hubble-relay"}}
)

// ciliumScripts are the agent image's scripts, from the module, at the
// paths the chart's DaemonSet runs them from.
var ciliumScripts = map[string]string{
	"init-container.sh": "images/cilium/init-container.sh",
	"install-plugin.sh": "plugins/cilium-cni/install-plugin.sh",
	"cni-uninstall.sh":  "plugins/cilium-cni/cni-uninstall.sh",
}

// ciliumBPFDir is where the agent looks for the datapath's C sources
// (defaults.LibraryPath + defaults.BpfDir), which it compiles with clang
// when it starts and whenever an endpoint's configuration changes.
const ciliumBPFDir = "var/lib/cilium/bpf"

// agentPackages are the Debian packages of the agent image's userland,
// taken with everything they depend on: clang to compile the datapath,
// the network tools the agent and its init containers run (ip, tc,
// iptables in both backends, ipset), kmod for modprobe, and the shell
// and core tools of the chart's scripts.
var agentPackages = []string{
	"clang-19",
	"iproute2", "iptables", "ipset", "kmod",
	"bash", "dash", "coreutils", "util-linux", "mount", "grep", "sed", "findutils",
	"ca-certificates",
}

// agentOptionalPackages join agentPackages when the root file system has
// them: bpftool, which cilium-bugtool and people debugging a node use.
var agentOptionalPackages = []string{"bpftool"}

// agentUserlandExclude are dependencies the agent image leaves out.
// clang-19 depends on the host's C and C++ toolchain (libc6-dev,
// libstdc++-12-dev, binutils, the gold linker plugin, ...) because it can
// compile and link programs for the host; the agent compiles only for
// --target=bpf with -nostdinc and never links, and those packages would
// double the image. ca-certificates depends on openssl and debconf for
// update-ca-certificates, which never runs in the image: only the
// certificates it made are used.
var agentUserlandExclude = map[string]bool{
	"libc6-dev": true, "libstdc++-12-dev": true, "libgcc-12-dev": true, "libobjc-12-dev": true,
	"binutils": true, "llvm-19-linker-tools": true,
	"openssl": true, "debconf": true,
}

// userlandFiles are files no package lists, made when the root file
// system was installed, that the agent image takes when present.
var userlandFiles = []string{
	"etc/ssl/certs/ca-certificates.crt",
	"etc/passwd", "etc/group",
	"etc/protocols", "etc/services", "etc/ethertypes",
}

const caCertificates = "etc/ssl/certs/ca-certificates.crt"

// ciliumBuilder holds one Cilium build's scratch space.
type ciliumBuilder struct {
	o    CiliumBuildOptions
	work string
	out  string   // built programs, by name
	src  string   // the writable copy of the module
	b    *builder // the Kubernetes build's helpers, for the loopback plugin
	// revision and date describe the release for ciliumVersion.
	revision, date string
}

func newCiliumBuilder(o CiliumBuildOptions, work string) *ciliumBuilder {
	out := filepath.Join(work, "out")
	return &ciliumBuilder{
		o: o, work: work, out: out, src: filepath.Join(work, "src"),
		b: &builder{o: BuildOptions{Arch: o.Arch, Go: o.Go, Log: o.Log}, work: work, out: out},
	}
}

func (c *ciliumBuilder) logf(format string, args ...any) {
	fmt.Fprintf(c.o.Log, "artifacts: "+format+"\n", args...)
}

// env is the go command's environment: the Kubernetes build's, with the
// toolchain pinned to the one the set's key names.
func (c *ciliumBuilder) env() []string {
	return append(c.b.env(c.o.Arch), "GOTOOLCHAIN=local")
}

// build makes every artifact of s.
func (c *ciliumBuilder) build(ctx context.Context, s *CiliumSet) error {
	start := time.Now()
	if err := c.source(ctx); err != nil {
		return err
	}
	ldflags, err := c.ldflags()
	if err != nil {
		return err
	}
	for _, g := range []struct {
		name  string
		progs []ciliumProgram
	}{{"agent", agentPrograms}, {"operator", operatorPrograms}, {"Hubble Relay", relayPrograms}} {
		if err := c.goBuild(ctx, g.name, ldflags, g.progs); err != nil {
			return err
		}
	}
	t := time.Now()
	mod, err := c.b.module(ctx, "loopback", "", "github.com/containernetworking/plugins@"+CNIPluginsVersion)
	if err != nil {
		return err
	}
	if err := c.b.goBuild(ctx, mod, c.o.Arch, "", filepath.Join(c.out, "loopback"), "github.com/containernetworking/plugins/plugins/main/loopback"); err != nil {
		return err
	}
	c.logf("built the CNI loopback plugin %s in %s", CNIPluginsVersion, time.Since(t).Round(time.Second))
	if err := c.helm(ctx, s); err != nil {
		return err
	}

	t = time.Now()
	r, err := openRootfs(c.o.Userland)
	if err != nil {
		return fmt.Errorf("Debian root file system: %w", err)
	}
	defer r.Close()
	userland, certs, err := c.userland(r)
	if err != nil {
		return err
	}
	specs, err := c.imageSpecs(userland, certs)
	if err != nil {
		return err
	}
	for _, spec := range specs {
		im, err := storeImage(s.dir, c.work, spec)
		if err != nil {
			return err
		}
		s.Images = append(s.Images, im)
		c.logf("image %s: %.1f MiB", spec.Ref, float64(im.Size)/(1<<20))
	}
	c.logf("wrote %d images in %s", len(specs), time.Since(t).Round(time.Second))

	chart := filepath.Join(c.work, "cilium-"+c.o.Version+".tgz")
	if err := packChart(filepath.Join(c.src, "install", "kubernetes", "cilium"), chart, "cilium", c.o.Version); err != nil {
		return err
	}
	digest, size, err := putBlob(s.dir, chart)
	if err != nil {
		return err
	}
	s.Chart = Blob{Digest: digest, Size: size}
	c.logf("Cilium %s built in %s", c.o.Version, time.Since(start).Round(time.Second))
	return nil
}

// unservedReplacements are modules that some Cilium releases' go.mod
// replaces others with and that the Go module proxy does not serve: their
// go.mod declares the path they replace, so the proxy and the checksum
// database refuse them. Dropping the replacement would build something
// other than the release, so such releases are refused.
var unservedReplacements = map[string]string{
	"github.com/cilium/apimachinery": "Cilium 1.18.4 to 1.18.6 replace k8s.io/apimachinery with a private fork (github.com/cilium/apimachinery) that the Go module proxy does not serve; build 1.17.x, 1.18.0 to 1.18.3, or 1.19.0 instead",
}

// source downloads the module through the module proxy and makes the
// writable copy that is built as the main module, so that its own replace
// lines and go.sum apply; then downloads what it requires.
func (c *ciliumBuilder) source(ctx context.Context) error {
	t := time.Now()
	mod, err := c.b.module(ctx, "cilium-download", "", "")
	if err != nil {
		return err
	}
	at := CiliumModule + "@v" + c.o.Version
	out, err := output(ctx, mod, c.env(), c.o.Go, "mod", "download", "-json", at)
	var info struct {
		Dir, Info, Error string
		Origin           struct{ Hash string }
	}
	if jerr := json.Unmarshal([]byte(out), &info); jerr == nil && info.Error != "" {
		return fmt.Errorf("go mod download %s: %s (is %s a Cilium release?)", at, info.Error, c.o.Version)
	}
	if err != nil {
		return fmt.Errorf("go mod download %s: %w", at, err)
	}
	if info.Dir == "" {
		return fmt.Errorf("go mod download %s printed no module directory", at)
	}
	c.revision = "unknown"
	if len(info.Origin.Hash) >= 10 {
		c.revision = info.Origin.Hash[:10]
	}
	c.date = "1970-01-01T00:00:00Z"
	if data, err := os.ReadFile(info.Info); err == nil {
		var meta struct{ Time time.Time }
		if json.Unmarshal(data, &meta) == nil && !meta.Time.IsZero() {
			c.date = meta.Time.UTC().Format(time.RFC3339)
		}
	}
	if err := copyTree(info.Dir, c.src); err != nil {
		return fmt.Errorf("copy %s: %w", at, err)
	}
	gomod, err := os.ReadFile(filepath.Join(c.src, "go.mod"))
	if err != nil {
		return err
	}
	for mod, why := range unservedReplacements {
		if regexp.MustCompile(`=>\s*` + regexp.QuoteMeta(mod) + `\s`).Match(gomod) {
			return errors.New(why)
		}
	}
	c.logf("downloaded %s (%s) in %s", at, c.revision, time.Since(t).Round(time.Second))

	t = time.Now()
	if _, err := output(ctx, c.src, c.env(), c.o.Go, "mod", "download"); err != nil {
		return fmt.Errorf("go mod download (the modules Cilium %s requires): %w", c.o.Version, err)
	}
	c.logf("downloaded the modules Cilium %s requires in %s", c.o.Version, time.Since(t).Round(time.Second))
	return nil
}

// ldflags are upstream's (Makefile.defs, hubble/Makefile): the version
// string `cilium-dbg version` and the agent report, the Envoy build the
// agent requires, and the Hubble CLI's version. Each variable must exist,
// or the recipe no longer matches the module.
func (c *ciliumBuilder) ldflags() (string, error) {
	vars := []struct{ file, decl, name, value string }{
		{"pkg/version/version.go", "var ciliumVersion string", "github.com/cilium/cilium/pkg/version.ciliumVersion",
			c.o.Version + " " + c.revision + " " + c.date},
		{"hubble/pkg/version.go", "Version string", "github.com/cilium/cilium/hubble/pkg.Version", "v" + c.o.Version},
		{"hubble/pkg/version.go", "GitHash string", "github.com/cilium/cilium/hubble/pkg.GitHash", c.revision},
	}
	envoy, err := c.envoySHA()
	if err != nil {
		return "", err
	}
	vars = append(vars, struct{ file, decl, name, value string }{"pkg/envoy/versioncheck.go", "var requiredEnvoyVersionSHA string",
		"github.com/cilium/cilium/pkg/envoy.requiredEnvoyVersionSHA", envoy})
	flags := []string{"-s", "-w"}
	for _, v := range vars {
		data, err := os.ReadFile(filepath.Join(c.src, filepath.FromSlash(v.file)))
		if err != nil || !strings.Contains(string(data), v.decl) {
			return "", fmt.Errorf("%s has no %q to stamp %s into; the build recipe does not know this Cilium version", v.file, v.decl, v.name)
		}
		flags = append(flags, "-X", "'"+v.name+"="+v.value+"'")
	}
	return strings.Join(flags, " "), nil
}

// envoySHA is the Envoy build upstream's agent image ships, as its
// Makefile.defs reads it from images/cilium/Dockerfile.
func (c *ciliumBuilder) envoySHA() (string, error) {
	data, err := os.ReadFile(filepath.Join(c.src, "images", "cilium", "Dockerfile"))
	if err != nil {
		return "", err
	}
	m := regexp.MustCompile(`(?m)^ARG CILIUM_ENVOY_IMAGE=[^\s:]+:(?:\S*-)?([0-9a-f]{40})@`).FindSubmatch(data)
	if m == nil {
		return "", errors.New("images/cilium/Dockerfile names no cilium-envoy image with a commit: the build recipe does not know this Cilium version")
	}
	return string(m[1]), nil
}

// goBuild builds one image's programs in one go invocation, so that the
// packages they share compile once, and moves each to c.out under its
// name in the image.
func (c *ciliumBuilder) goBuild(ctx context.Context, group, ldflags string, progs []ciliumProgram) error {
	t := time.Now()
	dir := filepath.Join(c.work, "bin-"+strings.ReplaceAll(strings.ToLower(group), " ", "-"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tags := "osusergo"
	var pkgs, names []string
	for _, p := range progs {
		if _, err := os.Stat(filepath.Join(c.src, filepath.FromSlash(p.Pkg), "main.go")); err != nil {
			return fmt.Errorf("the module has no %s (for %s): the build recipe does not know this Cilium version", p.Pkg, p.Name())
		}
		if p.Tags != "" {
			tags += "," + p.Tags
		}
		pkgs = append(pkgs, p.Pkg)
		names = append(names, p.Name())
	}
	args := append([]string{"build", "-trimpath", "-buildvcs=false", "-tags", tags, "-ldflags", ldflags, "-o", dir + "/"}, pkgs...)
	if _, err := output(ctx, c.src, c.env(), c.o.Go, args...); err != nil {
		return fmt.Errorf("go build (%s): %w", group, err)
	}
	for _, p := range progs {
		// go build -o dir/ names each program after its package's
		// directory: ./daemon is "daemon".
		if err := os.Rename(filepath.Join(dir, path.Base(p.Pkg)), filepath.Join(c.out, p.Name())); err != nil {
			return fmt.Errorf("go build (%s): %w", group, err)
		}
	}
	c.logf("built the %s's programs (%s) in %s", group, strings.Join(names, ", "), time.Since(t).Round(time.Second))
	return nil
}

// userland gathers the agent image's Debian userland from the root file
// system by package, and the CA certificates alone for the other images.
func (c *ciliumBuilder) userland(r *rootfs) (userland []layerEntry, certs layerEntry, err error) {
	u, err := openPackageUserland(r)
	if err != nil {
		return nil, certs, fmt.Errorf("agent userland: %w", err)
	}
	names := append([]string(nil), agentPackages...)
	for _, n := range agentOptionalPackages {
		if _, ok := u.db.pkgs[n]; ok {
			names = append(names, n)
		}
	}
	pkgs, err := u.db.closure(names, agentUserlandExclude)
	if err != nil {
		return nil, certs, fmt.Errorf("agent userland (was the node image's root file system built with %s?): %w", strings.Join(agentPackages, ", "), err)
	}
	if err := u.addPackages(pkgs); err != nil {
		return nil, certs, fmt.Errorf("agent userland: %w", err)
	}
	for _, f := range userlandFiles {
		if err := u.addFile(f); err != nil {
			if errors.Is(err, fs.ErrNotExist) && f != caCertificates {
				continue
			}
			return nil, certs, fmt.Errorf("agent userland: %w", err)
		}
	}
	// The agent runs `clang`; Debian names it clang-19.
	if _, ok := u.out["usr/bin/clang-19"]; !ok {
		return nil, certs, errors.New("agent userland: clang-19 installed no usr/bin/clang-19")
	}
	u.out["usr/bin/clang"] = layerEntry{Name: "usr/bin/clang", Link: "clang-19"}
	u.out["var/lib/dpkg/status"] = layerEntry{Name: "var/lib/dpkg/status", Mode: 0o644, Data: u.status(pkgs)}
	entries, size := u.entries()
	c.logf("agent userland: %d Debian packages, %d files, %.1f MiB", len(pkgs), len(entries), float64(size)/(1<<20))
	real, _, err := r.resolve(caCertificates)
	if err != nil {
		return nil, certs, fmt.Errorf("CA certificates: %w", err)
	}
	certs = u.out[real]
	certs.Name = caCertificates
	return entries, certs, nil
}

// imageSpecs lays out the three images.
func (c *ciliumBuilder) imageSpecs(userland []layerEntry, certs layerEntry) ([]imageSpec, error) {
	refs := CiliumImageRefs(c.o.Version)
	const path = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	bin := func(p ciliumProgram) layerEntry {
		return layerEntry{Name: p.Path, Mode: 0o755, Src: filepath.Join(c.out, p.Name())}
	}
	tmp := layerEntry{Name: "tmp", Mode: 0o777 | fs.ModeSticky, Dir: true}
	// gops, which the operator and relay start, writes under a directory
	// anyone may write, as upstream's images set up.
	gops := layerEntry{Name: "home/gops", Mode: 0o777, Dir: true}

	// The agent: the userland first, then lab's files over it.
	files := map[string]layerEntry{}
	for _, e := range userland {
		files[e.Name] = e
	}
	for _, p := range agentPrograms {
		files[p.Path] = bin(p)
	}
	files["usr/bin/cilium"] = layerEntry{Name: "usr/bin/cilium", Link: "cilium-dbg"}
	files["cni/loopback"] = layerEntry{Name: "cni/loopback", Mode: 0o755, Src: filepath.Join(c.out, "loopback")}
	for name, src := range ciliumScripts {
		files[name] = layerEntry{Name: name, Mode: 0o755, Src: filepath.Join(c.src, filepath.FromSlash(src))}
	}
	bpf, err := c.bpfSources()
	if err != nil {
		return nil, err
	}
	for _, e := range bpf {
		files[e.Name] = e
	}
	files["var/lib/cilium"] = layerEntry{Name: "var/lib/cilium", Mode: 0o750, Dir: true}
	files["tmp"] = tmp
	files["home/cilium"] = layerEntry{Name: "home/cilium", Mode: 0o755, Dir: true}
	agent := imageSpec{
		Ref: refs.Agent, Arch: c.o.Arch,
		Env:        []string{path, "HUBBLE_SERVER=unix:///var/run/cilium/hubble.sock", "INITSYSTEM=SYSTEMD"},
		WorkingDir: "/home/cilium",
		Cmd:        []string{"/usr/bin/cilium-dbg"},
	}
	for _, name := range sortedEntryNames(files) {
		agent.Files = append(agent.Files, files[name])
	}

	operator := imageSpec{
		Ref: refs.Operator, Arch: c.o.Arch,
		Env:   []string{path, "GOPS_CONFIG_DIR=/home/gops"},
		Cmd:   []string{"/" + operatorPrograms[0].Path},
		Files: []layerEntry{bin(operatorPrograms[0]), certs, tmp, gops},
	}
	relay := imageSpec{
		Ref: refs.Relay, Arch: c.o.Arch,
		Env:        []string{path, "GOPS_CONFIG_DIR=/home/gops"},
		Entrypoint: []string{"/" + relayPrograms[0].Path},
		Cmd:        []string{"serve"},
		// Upstream's relay runs as the distroless nonroot user.
		User:  "65532:65532",
		Files: []layerEntry{bin(relayPrograms[0]), certs, tmp, gops},
	}
	return []imageSpec{agent, operator, relay}, nil
}

// bpfSources are the module's bpf/ directory at ciliumBPFDir, as
// upstream's install-bpf target copies it (every file but .gitignore).
func (c *ciliumBuilder) bpfSources() ([]layerEntry, error) {
	root := filepath.Join(c.src, "bpf")
	var out []layerEntry
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() || filepath.Base(p) == ".gitignore" {
			return nil
		}
		out = append(out, layerEntry{Name: path.Join(ciliumBPFDir, filepath.ToSlash(rel)), Mode: 0o644, Src: p})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("datapath sources: %w", err)
	}
	if len(out) == 0 {
		return nil, errors.New("the module has no bpf/ sources")
	}
	return out, nil
}

func sortedEntryNames(m map[string]layerEntry) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// copyTree copies the directory src to dst, writable, as the go command
// needs its main module to be.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type().IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			return copyWritable(p, target, info.Mode().Perm()|0o200)
		}
		return nil // the module zip holds no links
	})
}

func copyWritable(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// HelmVersion is the helm release the build source makes for the nodes:
// the one the other sources download.
const HelmVersion = fetch.HelmVersion

// helmKubeMinor is the Kubernetes minor of the client-go HelmVersion is
// built with; helm's Makefile stamps it, and without it helm believes the
// cluster is Kubernetes 1.20 when it renders.
const helmKubeMinor = "34"

// helm builds HelmVersion for the nodes: the chart is installed from the
// first control plane, which reaches no release download either.
func (c *ciliumBuilder) helm(ctx context.Context, s *CiliumSet) error {
	t := time.Now()
	bin, err := buildHelm(ctx, c.b, c.o.Arch)
	if err != nil {
		return err
	}
	digest, size, err := putBlob(s.dir, bin)
	if err != nil {
		return err
	}
	s.Helm = Blob{Digest: digest, Size: size}
	c.logf("built helm %s in %s", HelmVersion, time.Since(t).Round(time.Second))
	return nil
}

// buildHelm builds HelmVersion for arch into b's output directory and
// returns its path.
func buildHelm(ctx context.Context, b *builder, arch string) (string, error) {
	mod, err := b.module(ctx, "helm", "", "helm.sh/helm/v3@"+HelmVersion)
	if err != nil {
		return "", err
	}
	ld := "-X helm.sh/helm/v3/internal/version.version=" + HelmVersion
	for _, pkg := range []string{"helm.sh/helm/v3/pkg/chartutil", "helm.sh/helm/v3/pkg/lint/rules"} {
		ld += " -X " + pkg + ".k8sVersionMajor=1 -X " + pkg + ".k8sVersionMinor=" + helmKubeMinor
	}
	bin := filepath.Join(b.out, "helm")
	if err := b.goBuild(ctx, mod, arch, ld, bin, "helm.sh/helm/v3/cmd/helm"); err != nil {
		return "", err
	}
	return bin, nil
}
