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
	"strconv"
	"strings"
	"time"

	"github.com/labctl/lab/internal/atomicfile"
)

// CiliumRepository is where lab names the Cilium images it builds: never
// quay.io/cilium, so that nobody mistakes them for upstream's.
const CiliumRepository = "lab.local/cilium"

// CiliumModule is the Go module Cilium is built from.
const CiliumModule = "github.com/cilium/cilium"

// ciliumRecipe changes whenever BuildCilium makes its set differently in a
// way its inputs do not show, so that old sets are not reused.
const ciliumRecipe = "2"

// minCiliumMinor is the oldest Cilium minor release whose layout
// (programs, scripts, chart) the recipe was checked against.
const minCiliumMinor = 17

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

// list is the references in the order a CiliumSet lists its images.
func (i CiliumImages) list() []string { return []string{i.Agent, i.Operator, i.Relay} }

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
	// Images are the agent's, the operator's and Hubble Relay's, in that
	// order, named as CiliumImageRefs(Version) names them.
	Images []Image `json:"images"`
	// Chart is the chart of install/kubernetes/cilium as a .tgz.
	Chart Blob `json:"chart"`
	// Helm is a helm program for the nodes (HelmVersion), which installs
	// the chart from the first control plane; empty when the nodes are
	// to download it.
	Helm Blob `json:"helm,omitzero"`

	dir string
}

// Blob is one file of the cache that is neither a program nor an image.
type Blob struct {
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
}

// Path is the local file holding the blob with the given digest.
func (s *CiliumSet) Path(digest string) string { return blobPath(s.dir, digest) }

// HelmPath is the local helm program for the nodes, or "" when the set
// has none.
func (s *CiliumSet) HelmPath() string {
	if s.Helm.Digest == "" {
		return ""
	}
	return s.Path(s.Helm.Digest)
}

// ChartPath is the local .tgz of the chart.
func (s *CiliumSet) ChartPath() string { return s.Path(s.Chart.Digest) }

// Image returns the set's image named ref, or nil.
func (s *CiliumSet) Image(ref string) *Image {
	for i := range s.Images {
		if s.Images[i].Ref == ref {
			return &s.Images[i]
		}
	}
	return nil
}

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

// ciliumVersionPattern is a release version: no "v", no pre-release.
var ciliumVersionPattern = regexp.MustCompile(`^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$`)

// CheckCiliumVersion refuses anything but a Cilium release the build
// source knows how to build: x.y.z without "v", 1.17.0 or later. The
// version names cache directories and image tags.
func CheckCiliumVersion(v string) error {
	m := ciliumVersionPattern.FindStringSubmatch(v)
	if m == nil {
		return fmt.Errorf("Cilium version %q is not a release version like 1.18.1 (no \"v\", no pre-release)", v)
	}
	minor, _ := strconv.Atoi(m[2])
	if m[1] == "0" || (m[1] == "1" && minor < minCiliumMinor) {
		return fmt.Errorf("Cilium %s is older than the build source supports: use 1.%d.0 or later", v, minCiliumMinor)
	}
	return nil
}

func (o *CiliumBuildOptions) setDefaults() error {
	if err := CheckCiliumVersion(o.Version); err != nil {
		return fmt.Errorf("build Cilium: %w", err)
	}
	if o.Arch == "" {
		o.Arch = runtime.GOARCH
	}
	if _, _, err := elfArch(o.Arch); err != nil {
		return fmt.Errorf("build Cilium: %w", err)
	}
	if o.Go == "" {
		o.Go = "go"
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Userland == "" {
		return errors.New("build Cilium: no Debian root file system to take the agent's userland from (build the node image's root file system first: lab image build)")
	}
	return nil
}

// ciliumDir holds the Cilium sets and their blobs, apart from the
// Kubernetes versions.
func (c Cache) ciliumDir(version string) string {
	return filepath.Join(c.Root, "cilium", "v"+version)
}

// BuildCilium returns the build source's set for o.Version: from the cache
// when it is there and intact, else built from github.com/cilium/cilium
// through the Go module proxy — the agent's, the operator's and Hubble
// Relay's programs into three images, the agent's with the datapath's C
// sources and a Debian userland (clang, iproute2, iptables, ...) taken
// from o.Userland — with the module's own Helm chart. cached reports
// whether nothing had to be built.
func (c Cache) BuildCilium(ctx context.Context, o CiliumBuildOptions) (set *CiliumSet, cached bool, err error) {
	if err := o.setDefaults(); err != nil {
		return nil, false, err
	}
	goVersion, err := output(ctx, "", nil, o.Go, "env", "GOVERSION")
	if err != nil {
		return nil, false, fmt.Errorf("build Cilium: the go command: %w", err)
	}
	userland, err := os.Stat(o.Userland)
	if err != nil {
		return nil, false, fmt.Errorf("build Cilium: Debian root file system: %w", err)
	}
	inputs := map[string]string{
		"recipe":     ciliumRecipe,
		"source":     SourceBuild,
		"cilium":     o.Version,
		"arch":       o.Arch,
		"repository": CiliumRepository,
		"go":         strings.TrimSpace(goVersion),
		"cniPlugins": CNIPluginsVersion,
		"helm":       HelmVersion,
		"userland":   fmt.Sprintf("%s %d", filepath.Base(o.Userland), userland.Size()),
	}
	return c.makeCilium(o.Version, inputs, o.Force, o.Log, func(s *CiliumSet, work string) error {
		b := newCiliumBuilder(o, work)
		if err := os.MkdirAll(b.out, 0o755); err != nil {
			return err
		}
		if err := b.build(ctx, s); err != nil {
			return fmt.Errorf("build Cilium %s: %w", o.Version, err)
		}
		return nil
	})
}

// makeCilium is Cache.make for Cilium sets: the cached set when it is
// there and intact (unless force), else the one fill makes in a scratch
// directory, with the version's directory locked throughout.
func (c Cache) makeCilium(version string, inputs map[string]string, force bool, log io.Writer, fill func(s *CiliumSet, work string) error) (*CiliumSet, bool, error) {
	key := inputKey(inputs)
	dir := c.ciliumDir(version)
	unlock, err := lock(dir)
	if err != nil {
		return nil, false, err
	}
	defer unlock()
	if !force {
		if s, err := c.LoadCilium(version, key); err == nil {
			return s, true, nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(log, "artifacts: building the Cilium set again: %v\n", err)
		}
	}
	// Scratch directories of runs that were killed: nobody else can be
	// using them while the lock is held.
	stale, _ := filepath.Glob(filepath.Join(dir, "work-*"))
	for _, d := range stale {
		os.RemoveAll(d)
	}
	work, err := os.MkdirTemp(dir, "work-")
	if err != nil {
		return nil, false, fmt.Errorf("artifact cache: %w", err)
	}
	defer os.RemoveAll(work)
	s := &CiliumSet{Version: version, Arch: inputs["arch"], Source: inputs["source"], Key: key, Inputs: inputs, dir: dir}
	if err := fill(s, work); err != nil {
		return nil, false, err
	}
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, false, err
	}
	if err := atomicfile.WriteFile(setPath(dir, key), append(data, '\n'), 0o644); err != nil {
		return nil, false, fmt.Errorf("artifact cache: %w", err)
	}
	// Loaded back as any later call loads it: the set passes the same
	// checks as one imported from elsewhere, and its blobs are recorded
	// as verified, so that the next call need not hash them.
	loaded, err := c.LoadCilium(version, key)
	if err != nil {
		return nil, false, fmt.Errorf("the Cilium set just built does not load: %w", err)
	}
	return loaded, false, nil
}

// LoadCilium returns the Cilium set with the given key for version, after
// checking it and every blob against its digest. A missing set is
// reported with errors.Is(err, fs.ErrNotExist).
func (c Cache) LoadCilium(version, key string) (*CiliumSet, error) {
	if err := CheckCiliumVersion(version); err != nil {
		return nil, fmt.Errorf("artifact cache: %w", err)
	}
	if !setKey.MatchString(key) {
		return nil, fmt.Errorf("artifact cache: %q is not a set key", key)
	}
	dir := c.ciliumDir(version)
	p := setPath(dir, key)
	s, err := readCiliumSet(p)
	if err != nil {
		return nil, err
	}
	if err := s.check(version, key); err != nil {
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
		return nil, fmt.Errorf("artifact cache: Cilium chart: %w", err)
	}
	if s.Helm.Digest != "" {
		if err := v.verify(s.Helm.Digest, s.Helm.Size); err != nil {
			return nil, fmt.Errorf("artifact cache: helm: %w", err)
		}
	}
	return s, nil
}

// readCiliumSet parses a set file strictly: a field lab does not write
// is an error, not something to ignore.
func readCiliumSet(p string) (*CiliumSet, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("artifact cache: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSetSize+1))
	if err != nil {
		return nil, fmt.Errorf("artifact cache: %s: %w", p, err)
	}
	if len(data) > maxSetSize {
		return nil, fmt.Errorf("artifact cache: %s is larger than a set can be", p)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var s CiliumSet
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("artifact cache: %s: %w", p, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("artifact cache: %s: more than one set in the file", p)
	}
	return &s, nil
}

// check refuses a set this lab would not have made: a set decides which
// images every node imports and runs privileged, and one imported from
// somewhere else proves by its digests only that it was not damaged. So
// its images must be exactly the three lab builds, under lab's names, and
// its key the hash of its inputs.
func (s *CiliumSet) check(version, key string) error {
	switch {
	case s.Version != version:
		return fmt.Errorf("the set is for Cilium %s, not %s", s.Version, version)
	case s.Source != SourceBuild && s.Source != SourceRelease:
		return fmt.Errorf("the set's source is %q; Cilium sets are built (%s) or hold upstream's chart (%s)", s.Source, SourceBuild, SourceRelease)
	case s.Key != key || !setKey.MatchString(s.Key):
		return fmt.Errorf("the set's key %q does not match its file name %s.json", s.Key, key)
	case inputKey(s.Inputs) != s.Key:
		return fmt.Errorf("the set's key %s is not the hash of its inputs (edited by hand?)", s.Key)
	case s.Inputs["cilium"] != s.Version || s.Inputs["arch"] != s.Arch || s.Inputs["source"] != s.Source:
		return errors.New("the set's inputs name another version, architecture or source than the set")
	}
	if _, _, err := elfArch(s.Arch); err != nil {
		return err
	}
	want := CiliumImageRefs(version).list()
	if s.Source == SourceRelease {
		want = nil // the nodes pull upstream's images
	}
	if len(s.Images) != len(want) {
		return fmt.Errorf("the set has %d images; a Cilium set has exactly %s", len(s.Images), strings.Join(want, ", "))
	}
	for i, im := range s.Images {
		if im.Ref != want[i] {
			return fmt.Errorf("image %d is %q; a Cilium set's images are exactly %s, in that order", i, im.Ref, strings.Join(want, ", "))
		}
		if !sha256Digest.MatchString(im.Digest) || !sha256Digest.MatchString(im.ID) || im.Size < 0 {
			return fmt.Errorf("image %s: digest %q or ID %q is not sha256:<64 hex digits>", im.Ref, im.Digest, im.ID)
		}
		if im.ControlPlane || im.Pulled != "" {
			return fmt.Errorf("image %s: a built Cilium image is neither control-plane only nor pulled", im.Ref)
		}
	}
	if !sha256Digest.MatchString(s.Chart.Digest) || s.Chart.Size < 0 {
		return fmt.Errorf("chart: digest %q is not sha256:<64 hex digits>", s.Chart.Digest)
	}
	if s.Helm != (Blob{}) && (!sha256Digest.MatchString(s.Helm.Digest) || s.Helm.Size < 0) {
		return fmt.Errorf("helm: digest %q is not sha256:<64 hex digits>", s.Helm.Digest)
	}
	return nil
}

// currentCilium reports whether s was made the way this lab makes Cilium
// sets: the same recipe, image names and CNI plugins release.
func currentCilium(s *CiliumSet) bool {
	return s.Inputs["recipe"] == ciliumRecipe && s.Inputs["repository"] == CiliumRepository &&
		s.Inputs["cniPlugins"] == CNIPluginsVersion
}

// FindCilium returns the newest intact, current Cilium set of version for
// nodes of arch in the cache, without building anything (for dry runs
// and for sets imported from elsewhere). When there is none the error
// satisfies errors.Is(err, fs.ErrNotExist).
func (c Cache) FindCilium(version, arch string) (*CiliumSet, error) {
	if err := CheckCiliumVersion(version); err != nil {
		return nil, fmt.Errorf("artifact cache: %w", err)
	}
	dir := c.ciliumDir(version)
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	var (
		best     *CiliumSet
		bestTime time.Time
		lastErr  error
	)
	for _, f := range files {
		s, err := readCiliumSet(f)
		if err != nil || s.Version != version || s.Arch != arch || s.Source != SourceBuild || !currentCilium(s) {
			continue
		}
		fi, err := os.Stat(f)
		if err != nil || (best != nil && !fi.ModTime().After(bestTime)) {
			continue
		}
		loaded, err := c.LoadCilium(version, strings.TrimSuffix(filepath.Base(f), ".json"))
		if err != nil {
			lastErr = err
			continue
		}
		best, bestTime = loaded, fi.ModTime()
	}
	if best == nil {
		if lastErr != nil {
			return nil, lastErr
		}
		return nil, fmt.Errorf("artifact cache %s: no built Cilium %s for %s: %w", c.Root, version, arch, fs.ErrNotExist)
	}
	return best, nil
}

// CiliumGatherOptions says how GatherCilium makes a Cilium set that is not
// in the cache.
type CiliumGatherOptions struct {
	// Version is the Cilium version without "v", e.g. 1.18.1.
	Version string
	// Arch is the nodes' architecture (Go's name).
	Arch string
	// Source is the lab's Kubernetes artifact source: build makes the
	// images here; any other source has the nodes pull upstream's, so
	// the set holds the chart alone.
	Source string
	// Userland returns the node image's Debian root file system, for a
	// build; it is asked only when one is needed.
	Userland func() (string, error)
	Log      io.Writer
}

// GatherCilium returns the Cilium set a lab needs, as Gather does for
// Kubernetes: for the build source the newest built set in the cache
// (made here or imported from a bundle, so that an offline site needs no
// go command), else one built now; for the other sources the chart-only
// set. found reports whether it came from the cache.
func (c Cache) GatherCilium(ctx context.Context, o CiliumGatherOptions) (set *CiliumSet, found bool, err error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Source != SourceBuild {
		return c.CiliumChart(ctx, CiliumChartOptions{Version: o.Version, Arch: o.Arch, Log: o.Log})
	}
	if s, err := c.FindCilium(o.Version, o.Arch); err == nil {
		return s, true, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(o.Log, "artifacts: %v; building Cilium again\n", err)
	}
	b := CiliumBuildOptions{Version: o.Version, Arch: o.Arch, Log: o.Log}
	if o.Userland != nil {
		if b.Userland, err = o.Userland(); err != nil {
			return nil, false, err
		}
	}
	return c.BuildCilium(ctx, b)
}
