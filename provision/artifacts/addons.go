package artifacts

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/labctl/lab/internal/atomicfile"
)

// AddonRepository is where lab names the add-on images it builds, apart
// from upstream's names.
const AddonRepository = "lab.local/addons"

// addonRecipe changes whenever BuildAddon makes its sets differently in a
// way their inputs do not show.
const addonRecipe = "1"

// AddonImageRef is the reference of the image the build source makes for
// add-on name at version.
func AddonImageRef(name, version string) string {
	return AddonRepository + "/" + name + ":" + version
}

// AddonSet is what lab needs to install one builtin add-on: its chart,
// taken from the add-on's own Go module, and for the build source the
// image built from that module and a helm program for the nodes.
type AddonSet struct {
	Name string `json:"name"`
	// Version is the add-on's release, e.g. v0.8.0.
	Version string `json:"version"`
	Arch    string `json:"arch"`
	Source  string `json:"source"`
	Key     string `json:"key"`
	// Inputs records what the key covers, for people.
	Inputs map[string]string `json:"inputs"`
	// Images is the one image the build source makes, named
	// AddonImageRef(Name, Version); none for the release source, whose
	// nodes pull upstream's.
	Images []Image `json:"images"`
	// Chart is the module's chart as a .tgz, and ChartVersion its
	// Chart.yaml version (which is not the add-on's).
	Chart        Blob   `json:"chart"`
	ChartVersion string `json:"chartVersion"`
	// Helm is a helm program for the nodes; empty when they download it.
	Helm Blob `json:"helm,omitzero"`

	dir string
}

// Path is the local file holding the blob with the given digest.
func (s *AddonSet) Path(digest string) string { return blobPath(s.dir, digest) }

// ChartPath is the local .tgz of the chart.
func (s *AddonSet) ChartPath() string { return s.Path(s.Chart.Digest) }

// HelmPath is the local helm program for the nodes, or "".
func (s *AddonSet) HelmPath() string {
	if s.Helm.Digest == "" {
		return ""
	}
	return s.Path(s.Helm.Digest)
}

// AddonOptions say which add-on set GatherAddon returns.
type AddonOptions struct {
	// Name is a builtin add-on (labfile.BuiltinAddons).
	Name    string
	Module  string
	Version string
	// Arch is the nodes' architecture. Default: this machine's.
	Arch string
	// Source is the lab's artifact source: build makes the image here;
	// the others have the nodes pull upstream's, and the set holds the
	// chart alone.
	Source string
	// Userland returns the node image's Debian root file system, for
	// images that carry a shell; asked only when one is built.
	Userland func() (string, error)
	// Go is the go command. Default: "go" on PATH.
	Go string
	// Proxy is a GOPROXY list for the chart of a release whose module
	// hash lab knows; default: the environment's, else DefaultGoProxy.
	Proxy string
	Force bool
	Log   io.Writer

	// moduleSum stands in for addonModuleSums' entry, for tests.
	moduleSum string
}

// addonModuleSums are the Go checksum database's hashes of the builtin
// add-ons' module zips lab knows, by "<name>@<version>": with one, a lab
// whose nodes pull images takes the chart from the module proxy without a
// go command, and uses the zip only when it has this hash.
var addonModuleSums = map[string]string{
	"metrics-server@v0.8.0":          "h1:Zlsi3sBWEtFKCD3+xSysThvXyLQ363rUAlqpnsY5JwI=",
	"local-path-provisioner@v0.0.30": "h1:OkiuofkCSscddl7tma/B9Ox1wu+JEVSrP7IcZI65Ggo=",
}

// addonKnownReleases lists the releases of add-on name in addonModuleSums.
func addonKnownReleases(name string) string {
	var out []string
	for k := range addonModuleSums {
		if n, v, _ := strings.Cut(k, "@"); n == name {
			out = append(out, v)
		}
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

var addonName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

func (o *AddonOptions) setDefaults() error {
	if !addonName.MatchString(o.Name) || !strings.Contains(o.Module, "/") {
		return fmt.Errorf("add-on %q from module %q: not an add-on lab builds", o.Name, o.Module)
	}
	if !regexp.MustCompile(`^v[0-9]+\.[0-9]+\.[0-9]+$`).MatchString(o.Version) {
		return fmt.Errorf("add-on %s: %q is not a release version like v0.8.0", o.Name, o.Version)
	}
	if _, ok := addonRecipes[o.Name]; !ok {
		return fmt.Errorf("add-on %s: lab has no recipe for it", o.Name)
	}
	if o.Arch == "" {
		o.Arch = runtime.GOARCH
	}
	if o.Go == "" {
		o.Go = "go"
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	return nil
}

func (c Cache) addonDir(name, version string) string {
	return filepath.Join(c.Root, "addons", name, version)
}

// GatherAddon returns the set of a builtin add-on: from the cache when it
// is there and intact, else made now — for the build source, its program
// built from the module through the Go module proxy into an image, helm
// for the nodes, and the module's chart; for the others, the chart alone.
// found reports whether nothing had to be made.
func (c Cache) GatherAddon(ctx context.Context, o AddonOptions) (set *AddonSet, found bool, err error) {
	if err := o.setDefaults(); err != nil {
		return nil, false, err
	}
	source := SourceRelease
	if o.Source == SourceBuild {
		source = SourceBuild
	}
	inputs := map[string]string{
		"recipe":  addonRecipe,
		"source":  source,
		"addon":   o.Name,
		"module":  o.Module,
		"version": o.Version,
		"arch":    o.Arch,
	}
	// A chart alone, of a release whose hash lab knows, comes straight
	// from the module proxy: a laptop running lab needs no go command.
	sum := o.moduleSum
	if sum == "" {
		sum = addonModuleSums[o.Name+"@"+o.Version]
	}
	if source == SourceRelease && sum != "" {
		inputs["moduleSum"] = sum
	} else {
		goVersion, err := output(ctx, "", nil, o.Go, "env", "GOVERSION")
		if err != nil {
			if source == SourceRelease {
				return nil, false, fmt.Errorf("add-on %s %s: lab knows the module hash of %s only, and other releases come through the go command, which failed: %w",
					o.Name, o.Version, addonKnownReleases(o.Name), err)
			}
			return nil, false, fmt.Errorf("add-on %s: the go command: %w", o.Name, err)
		}
		inputs["go"] = strings.TrimSpace(goVersion)
	}
	userland := ""
	if source == SourceBuild {
		inputs["repository"] = AddonRepository
		inputs["helm"] = HelmVersion
		if len(addonRecipes[o.Name].packages) > 0 {
			if o.Userland == nil {
				return nil, false, fmt.Errorf("add-on %s: its image carries a Debian userland, and lab was given no node image root file system", o.Name)
			}
			if userland, err = o.Userland(); err != nil {
				return nil, false, err
			}
			fi, err := os.Stat(userland)
			if err != nil {
				return nil, false, fmt.Errorf("add-on %s: Debian root file system: %w", o.Name, err)
			}
			inputs["userland"] = fmt.Sprintf("%s %d", filepath.Base(userland), fi.Size())
		}
	}
	key := inputKey(inputs)
	dir := c.addonDir(o.Name, o.Version)
	unlock, err := lock(dir)
	if err != nil {
		return nil, false, err
	}
	defer unlock()
	if !o.Force {
		if s, err := c.LoadAddon(o.Name, o.Version, key); err == nil {
			return s, true, nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(o.Log, "artifacts: making add-on %s again: %v\n", o.Name, err)
		}
	}
	stale, _ := filepath.Glob(filepath.Join(dir, "work-*"))
	for _, d := range stale {
		os.RemoveAll(d)
	}
	work, err := os.MkdirTemp(dir, "work-")
	if err != nil {
		return nil, false, fmt.Errorf("artifact cache: %w", err)
	}
	defer os.RemoveAll(work)
	s := &AddonSet{Name: o.Name, Version: o.Version, Arch: o.Arch, Source: source, Key: key, Inputs: inputs, Images: []Image{}, dir: dir}
	if source == SourceBuild {
		sum = ""
	}
	b := &addonBuilder{o: o, s: s, work: work, userland: userland, sum: sum,
		b: &builder{o: BuildOptions{Arch: o.Arch, Go: o.Go, Log: o.Log}, work: work, out: filepath.Join(work, "out")}}
	if err := b.build(ctx); err != nil {
		return nil, false, fmt.Errorf("add-on %s %s: %w", o.Name, o.Version, err)
	}
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, false, err
	}
	if err := atomicfile.WriteFile(setPath(dir, key), append(data, '\n'), 0o644); err != nil {
		return nil, false, fmt.Errorf("artifact cache: %w", err)
	}
	loaded, err := c.LoadAddon(o.Name, o.Version, key)
	if err != nil {
		return nil, false, fmt.Errorf("the add-on set just made does not load: %w", err)
	}
	return loaded, false, nil
}

// LoadAddon returns the set with the given key of add-on name at version,
// after checking it and every blob against its digest. A missing set is
// reported with errors.Is(err, fs.ErrNotExist).
func (c Cache) LoadAddon(name, version, key string) (*AddonSet, error) {
	if !addonName.MatchString(name) || !regexp.MustCompile(`^v[0-9]+\.[0-9]+\.[0-9]+$`).MatchString(version) {
		return nil, fmt.Errorf("artifact cache: add-on %q %q is not a name and release", name, version)
	}
	if !setKey.MatchString(key) {
		return nil, fmt.Errorf("artifact cache: %q is not a set key", key)
	}
	dir := c.addonDir(name, version)
	p := setPath(dir, key)
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("artifact cache: %w", err)
	}
	if len(data) > maxSetSize {
		return nil, fmt.Errorf("artifact cache: %s is larger than a set can be", p)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var s AddonSet
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("artifact cache: %s: %w", p, err)
	}
	if err := s.check(name, version, key); err != nil {
		return nil, fmt.Errorf("artifact cache: %s: %w", p, err)
	}
	s.dir = dir
	v := loadVerified(dir)
	defer v.save()
	for _, im := range s.Images {
		if err := v.verify(im.Digest, im.Size); err != nil {
			return nil, fmt.Errorf("artifact cache: image %s: %w", im.Ref, err)
		}
	}
	if err := v.verify(s.Chart.Digest, s.Chart.Size); err != nil {
		return nil, fmt.Errorf("artifact cache: %s chart: %w", name, err)
	}
	if s.Helm.Digest != "" {
		if err := v.verify(s.Helm.Digest, s.Helm.Size); err != nil {
			return nil, fmt.Errorf("artifact cache: helm: %w", err)
		}
	}
	return &s, nil
}

// check refuses a set lab would not have made: its one image must be the
// one lab builds, under lab's name, and its key the hash of its inputs.
func (s *AddonSet) check(name, version, key string) error {
	switch {
	case s.Name != name || s.Version != version:
		return fmt.Errorf("the set is %s %s, not %s %s", s.Name, s.Version, name, version)
	case s.Key != key || inputKey(s.Inputs) != s.Key:
		return fmt.Errorf("the set's key %q is not the hash of its inputs or its file name (edited by hand?)", s.Key)
	case s.Inputs["addon"] != s.Name || s.Inputs["version"] != s.Version || s.Inputs["arch"] != s.Arch || s.Inputs["source"] != s.Source:
		return errors.New("the set's inputs name another add-on, version, architecture or source than the set")
	case !sha256Digest.MatchString(s.Chart.Digest) || s.ChartVersion == "":
		return fmt.Errorf("chart: digest %q or version %q is not valid", s.Chart.Digest, s.ChartVersion)
	}
	want := []string{AddonImageRef(name, version)}
	if s.Source != SourceBuild {
		want = nil
	}
	if len(s.Images) != len(want) {
		return fmt.Errorf("the set has %d images, want %d", len(s.Images), len(want))
	}
	for i, im := range s.Images {
		if im.Ref != want[i] || !sha256Digest.MatchString(im.Digest) || !sha256Digest.MatchString(im.ID) || im.ControlPlane || im.Pulled != "" {
			return fmt.Errorf("image %q is not the image lab builds for %s", im.Ref, name)
		}
	}
	if s.Helm != (Blob{}) && !sha256Digest.MatchString(s.Helm.Digest) {
		return fmt.Errorf("helm: digest %q is not sha256:<64 hex digits>", s.Helm.Digest)
	}
	return nil
}

// addonRecipeSpec is how one builtin add-on is made: its program and image,
// and where its module keeps its chart.
type addonRecipeSpec struct {
	// chartDir is the chart's directory in the module; chartName its
	// name in Chart.yaml.
	chartDir, chartName string
	// pkg is the program's package, relative to the module.
	pkg string
	// ldflags stamps the version, as upstream's build does.
	ldflags func(version string) string
	// packages are the Debian packages the image carries beside the
	// program (with their dependencies), taken from the node image.
	packages []string
	// image lays out the image around the program at bin.
	image func(ref, arch, bin string, userland []layerEntry) imageSpec
}

// addonRecipes are the builtin add-ons' recipes, checked against each
// module's Makefile and Dockerfile at the version labfile pins.
var addonRecipes = map[string]addonRecipeSpec{
	"metrics-server": {
		chartDir: "charts/metrics-server", chartName: "metrics-server",
		pkg: "./cmd/metrics-server",
		ldflags: func(v string) string {
			return "-X k8s.io/client-go/pkg/version.gitVersion=" + v
		},
		// Upstream's: the program alone on distroless/static, as
		// nobody.
		image: func(ref, arch, bin string, _ []layerEntry) imageSpec {
			return imageSpec{Ref: ref, Arch: arch, Entrypoint: []string{"/metrics-server"}, User: "65534",
				Files: []layerEntry{
					{Name: "metrics-server", Mode: 0o755, Src: bin},
					{Name: "tmp", Mode: 0o777 | fs.ModeSticky, Dir: true},
				}}
		},
	},
	"local-path-provisioner": {
		chartDir: "deploy/chart/local-path-provisioner", chartName: "local-path-provisioner",
		pkg: ".",
		ldflags: func(v string) string {
			return "-X main.VERSION=" + v
		},
		// The provisioner's helper pods run its setup and teardown
		// scripts (sh, mkdir, rm) in the helper image; lab's image is
		// both, with a Debian shell and core tools where upstream has
		// Alpine's busybox.
		packages: []string{"dash", "coreutils"},
		image: func(ref, arch, bin string, userland []layerEntry) imageSpec {
			files := append([]layerEntry{
				{Name: "usr/bin/local-path-provisioner", Mode: 0o755, Src: bin},
				{Name: "tmp", Mode: 0o777 | fs.ModeSticky, Dir: true},
			}, userland...)
			return imageSpec{Ref: ref, Arch: arch, Cmd: []string{"local-path-provisioner"},
				Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, Files: files}
		},
	},
}

// addonBuilder holds one add-on set's scratch space.
type addonBuilder struct {
	o        AddonOptions
	s        *AddonSet
	work     string
	userland string
	// sum is the module zip's hash when the chart comes straight from
	// the proxy; "" when the go command downloads the module.
	sum string
	b   *builder
}

func (a *addonBuilder) logf(format string, args ...any) {
	fmt.Fprintf(a.o.Log, "artifacts: "+format+"\n", args...)
}

func (a *addonBuilder) build(ctx context.Context) error {
	start := time.Now()
	r := addonRecipes[a.o.Name]
	src := filepath.Join(a.work, "src")
	chartDir := filepath.Join(src, filepath.FromSlash(r.chartDir))
	if a.sum != "" {
		chartDir = filepath.Join(a.work, "chart")
		zipPath := filepath.Join(a.work, "module.zip")
		a.logf("downloading the %s@%s module from %s for its chart", a.o.Module, a.o.Version, goProxy(a.o.Proxy))
		if err := downloadModule(ctx, a.o.Proxy, a.o.Module, a.o.Version, a.sum, zipPath); err != nil {
			return err
		}
		if err := extractModuleTree(zipPath, a.o.Module, a.o.Version, r.chartDir, chartDir); err != nil {
			return err
		}
	} else if err := a.source(ctx, src); err != nil {
		return err
	}
	chart := filepath.Join(a.work, r.chartName+".tgz")
	if err := packChart(chartDir, chart, r.chartName, ""); err != nil {
		return err
	}
	chartYAML, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		return err
	}
	a.s.ChartVersion = chartField(chartYAML, "version")
	digest, size, err := putBlob(a.s.dir, chart)
	if err != nil {
		return err
	}
	a.s.Chart = Blob{Digest: digest, Size: size}
	if a.s.Source != SourceBuild {
		a.logf("%s %s: chart %s from %s", a.o.Name, a.o.Version, a.s.ChartVersion, a.o.Module)
		return nil
	}

	t := time.Now()
	if err := os.MkdirAll(a.b.out, 0o755); err != nil {
		return err
	}
	if _, err := output(ctx, src, a.env(), a.o.Go, "mod", "download"); err != nil {
		return fmt.Errorf("go mod download (the modules %s requires): %w", a.o.Name, err)
	}
	bin := filepath.Join(a.b.out, a.o.Name)
	args := []string{"build", "-trimpath", "-buildvcs=false", "-ldflags", "-s -w " + r.ldflags(a.o.Version), "-o", bin, r.pkg}
	if _, err := output(ctx, src, a.env(), a.o.Go, args...); err != nil {
		return fmt.Errorf("go build %s: %w", r.pkg, err)
	}
	a.logf("built %s %s in %s", a.o.Name, a.o.Version, time.Since(t).Round(time.Second))

	var userland []layerEntry
	if len(r.packages) > 0 {
		rf, err := openRootfs(a.userland)
		if err != nil {
			return fmt.Errorf("Debian root file system: %w", err)
		}
		defer rf.Close()
		if userland, err = addonUserland(rf, r.packages); err != nil {
			return fmt.Errorf("%s's userland: %w", a.o.Name, err)
		}
	}
	im, err := storeImage(a.s.dir, a.work, r.image(AddonImageRef(a.o.Name, a.o.Version), a.o.Arch, bin, userland))
	if err != nil {
		return err
	}
	a.s.Images = []Image{im}
	a.logf("image %s: %.1f MiB", im.Ref, float64(im.Size)/(1<<20))
	if err := a.helm(ctx); err != nil {
		return err
	}
	a.logf("add-on %s %s made in %s", a.o.Name, a.o.Version, time.Since(start).Round(time.Second))
	return nil
}

// env is the go command's environment: static builds for the nodes, with
// the toolchain pinned to the one the set's key names.
func (a *addonBuilder) env() []string {
	return append(a.b.env(a.o.Arch), "GOTOOLCHAIN=local")
}

// source downloads the module through the module proxy and makes the
// writable copy that is built as the main module, so that its own replace
// lines and go.sum apply. A vendor directory is dropped: the modules come
// from the proxy, checked against go.sum.
func (a *addonBuilder) source(ctx context.Context, dst string) error {
	t := time.Now()
	mod, err := a.b.module(ctx, "download", "", "")
	if err != nil {
		return err
	}
	at := a.o.Module + "@" + a.o.Version
	out, err := output(ctx, mod, a.env(), a.o.Go, "mod", "download", "-json", at)
	var info struct{ Dir, Error string }
	if jerr := json.Unmarshal([]byte(out), &info); jerr == nil && info.Error != "" {
		return fmt.Errorf("go mod download %s: %s", at, info.Error)
	}
	if err != nil {
		return fmt.Errorf("go mod download %s: %w", at, err)
	}
	if info.Dir == "" {
		return fmt.Errorf("go mod download %s printed no module directory", at)
	}
	if err := copyTree(info.Dir, dst); err != nil {
		return fmt.Errorf("copy %s: %w", at, err)
	}
	if err := os.RemoveAll(filepath.Join(dst, "vendor")); err != nil {
		return err
	}
	a.logf("downloaded %s in %s", at, time.Since(t).Round(time.Second))
	return nil
}

// helm builds HelmVersion for the nodes into the set.
func (a *addonBuilder) helm(ctx context.Context) error {
	t := time.Now()
	bin, err := buildHelm(ctx, a.b, a.o.Arch)
	if err != nil {
		return err
	}
	digest, size, err := putBlob(a.s.dir, bin)
	if err != nil {
		return err
	}
	a.s.Helm = Blob{Digest: digest, Size: size}
	a.logf("built helm %s in %s", HelmVersion, time.Since(t).Round(time.Second))
	return nil
}

// addonUserland gathers packages, with what they depend on, from the root
// file system, with /bin/sh.
func addonUserland(r *rootfs, packages []string) ([]layerEntry, error) {
	u, err := openPackageUserland(r)
	if err != nil {
		return nil, err
	}
	pkgs, err := u.db.closure(packages, nil)
	if err != nil {
		return nil, err
	}
	if err := u.addPackages(pkgs); err != nil {
		return nil, err
	}
	// dash's maintainer script makes /bin/sh; no package lists it.
	if err := u.addFile("bin/sh"); err != nil {
		return nil, err
	}
	for _, f := range []string{"etc/passwd", "etc/group"} {
		if err := u.addFile(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	u.out["var/lib/dpkg/status"] = layerEntry{Name: "var/lib/dpkg/status", Mode: 0o644, Data: u.status(pkgs)}
	entries, _ := u.entries()
	return entries, nil
}
