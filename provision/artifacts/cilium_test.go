package artifacts

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/labctl/lab/provision/provider/docker/nodeimage"
)

func TestCheckCiliumVersion(t *testing.T) {
	for _, v := range []string{"1.17.0", "1.17.6", "1.18.0", "1.18.1", "1.19.12", "2.0.0"} {
		if err := CheckCiliumVersion(v); err != nil {
			t.Errorf("CheckCiliumVersion(%s): %v", v, err)
		}
	}
	for _, v := range []string{"", "v1.18.1", "1.18", "1.18.1-rc.1", "1.18.01", "1.18.1 ", "../1.18.1", "1.16.9", "0.18.1", "1.18.x"} {
		if err := CheckCiliumVersion(v); err == nil {
			t.Errorf("CheckCiliumVersion(%q): no error", v)
		}
	}
}

func TestCiliumImageRefs(t *testing.T) {
	refs := CiliumImageRefs("1.18.1")
	for _, ref := range refs.list() {
		if !imageRef.MatchString(ref) || !strings.HasPrefix(ref, CiliumRepository+"/") || tagOf(ref) != "v1.18.1" {
			t.Errorf("reference %q", ref)
		}
	}
	if imageName(refs.Agent) != "cilium" || imageName(refs.Operator) != "operator-generic" || imageName(refs.Relay) != "hubble-relay" {
		t.Errorf("image names %v", refs)
	}
}

// writeChart makes a small chart directory.
func writeChart(t *testing.T, version string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "cilium")
	files := map[string]string{
		"Chart.yaml":                    "apiVersion: v2\nname: cilium\nversion: " + version + "\nappVersion: " + version + "\n",
		"values.yaml":                   "image: {}\n",
		".helmignore":                   "# comment\n*.swp\n.git/\nfiles/skip/\n!keep.swp\n",
		"templates/daemonset.yaml":      "kind: DaemonSet\n",
		"templates/cilium-agent/x.yaml": "x: 1\n",
		"templates/.git/config":         "git\n",
		"templates/edit.swp":            "swap\n",
		"keep.swp":                      "kept by negation\n",
		"files/skip/a.txt":              "ignored directory\n",
		"files/nodeinit/startup.bash":   "#!/bin/bash\n",
	}
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o444); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestPackChartIsDeterministic(t *testing.T) {
	dir := writeChart(t, "1.18.1")
	out := t.TempDir()
	var blobs [][]byte
	for i := 0; i < 2; i++ {
		p := filepath.Join(out, "chart.tgz")
		if err := packChart(dir, p, "cilium", "1.18.1"); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		blobs = append(blobs, b)
		// A later mtime on the sources changes nothing.
		later := time.Now().Add(time.Duration(i+1) * time.Hour)
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			return os.Chtimes(p, later, later)
		})
	}
	if !bytes.Equal(blobs[0], blobs[1]) {
		t.Fatal("two packings of the same chart differ")
	}
	zr, err := gzip.NewReader(bytes.NewReader(blobs[0]))
	if err != nil {
		t.Fatal(err)
	}
	if zr.Name != "" || !zr.ModTime.IsZero() {
		t.Errorf("gzip header names %q at %v", zr.Name, zr.ModTime)
	}
	tr := tar.NewReader(zr)
	var names []string
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag != tar.TypeReg || hdr.Mode != 0o644 || !hdr.ModTime.Equal(epoch) || hdr.Uid != 0 || hdr.Gid != 0 {
			t.Errorf("%s: type %c mode %o time %v owner %d:%d", hdr.Name, hdr.Typeflag, hdr.Mode, hdr.ModTime, hdr.Uid, hdr.Gid)
		}
		names = append(names, hdr.Name)
	}
	want := "cilium/.helmignore cilium/Chart.yaml cilium/files/nodeinit/startup.bash cilium/keep.swp " +
		"cilium/templates/cilium-agent/x.yaml cilium/templates/daemonset.yaml cilium/values.yaml"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("chart entries\n %s\nwant\n %s", got, want)
	}
}

func TestPackChartChecksVersion(t *testing.T) {
	dir := writeChart(t, "1.18.0")
	err := packChart(dir, filepath.Join(t.TempDir(), "c.tgz"), "cilium", "1.18.1")
	if err == nil || !strings.Contains(err.Error(), `version "1.18.0"`) {
		t.Errorf("packing a 1.18.0 chart as 1.18.1: %v", err)
	}
}

// fakeCiliumSet stores a set with small blobs in cache, as BuildCilium
// would, and returns it.
func fakeCiliumSet(t *testing.T, c Cache, version, arch string) *CiliumSet {
	t.Helper()
	inputs := map[string]string{
		"recipe": ciliumRecipe, "source": SourceBuild, "cilium": version, "arch": arch,
		"repository": CiliumRepository, "go": "go1.26", "cniPlugins": CNIPluginsVersion, "userland": "base.tar 1",
	}
	s, cached, err := c.makeCilium(version, inputs, false, io.Discard, func(s *CiliumSet, work string) error {
		for i, ref := range CiliumImageRefs(version).list() {
			p := filepath.Join(work, "img")
			if err := os.WriteFile(p, []byte(ref), 0o644); err != nil {
				return err
			}
			d, n, err := putBlob(s.dir, p)
			if err != nil {
				return err
			}
			s.Images = append(s.Images, Image{Ref: ref, Digest: d, Size: n, ID: digestOf([]byte{byte(i)})})
		}
		p := filepath.Join(work, "chart")
		if err := os.WriteFile(p, []byte("chart "+version), 0o644); err != nil {
			return err
		}
		d, n, err := putBlob(s.dir, p)
		s.Chart = Blob{Digest: d, Size: n}
		return err
	})
	if err != nil || cached {
		t.Fatalf("makeCilium: cached %v, %v", cached, err)
	}
	return s
}

func TestCiliumSetLoadAndFind(t *testing.T) {
	c := Cache{Root: t.TempDir()}
	s := fakeCiliumSet(t, c, "1.18.1", "amd64")
	loaded, err := c.LoadCilium("1.18.1", s.Key)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.ChartPath() != s.ChartPath() || loaded.Image(CiliumImageRefs("1.18.1").Relay) == nil {
		t.Errorf("loaded set %+v", loaded)
	}
	found, err := c.FindCilium("1.18.1", "amd64")
	if err != nil || found.Key != s.Key {
		t.Errorf("FindCilium = %v, %v", found, err)
	}
	for _, q := range [][2]string{{"1.18.1", "arm64"}, {"1.18.0", "amd64"}} {
		if _, err := c.FindCilium(q[0], q[1]); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("FindCilium(%s, %s): %v, want fs.ErrNotExist", q[0], q[1], err)
		}
	}
	if _, err := c.FindCilium("v1.18.1", "amd64"); err == nil || errors.Is(err, fs.ErrNotExist) {
		t.Errorf("FindCilium(v1.18.1): %v", err)
	}
	// A second make with the same inputs finds the set.
	again, cached, err := c.makeCilium("1.18.1", s.Inputs, false, io.Discard, func(*CiliumSet, string) error {
		return errors.New("built again")
	})
	if err != nil || !cached || again.Key != s.Key {
		t.Errorf("second makeCilium: %v cached %v, %v", again, cached, err)
	}
}

// TestCiliumSetCheck edits a stored set's file in every way lab must
// refuse, and damages a blob.
func TestCiliumSetCheck(t *testing.T) {
	for name, edit := range map[string]func(m map[string]any){
		"unknown field": func(m map[string]any) { m["binaries"] = []any{} },
		"other version": func(m map[string]any) { m["version"] = "1.18.0" },
		"other source":  func(m map[string]any) { m["source"] = "release" },
		"edited inputs": func(m map[string]any) { m["inputs"].(map[string]any)["go"] = "go1.0" },
		"other arch":    func(m map[string]any) { m["arch"] = "arm64" },
		"extra image": func(m map[string]any) {
			ims := m["images"].([]any)
			m["images"] = append(ims, ims[0])
		},
		"renamed image": func(m map[string]any) {
			m["images"].([]any)[0].(map[string]any)["ref"] = "quay.io/cilium/cilium:v1.18.1"
		},
		"swapped images": func(m map[string]any) {
			ims := m["images"].([]any)
			ims[0], ims[1] = ims[1], ims[0]
		},
		"md5 digest":        func(m map[string]any) { m["images"].([]any)[2].(map[string]any)["digest"] = "md5:00" },
		"bad image ID":      func(m map[string]any) { m["images"].([]any)[2].(map[string]any)["id"] = "sha256:xyz" },
		"control plane":     func(m map[string]any) { m["images"].([]any)[1].(map[string]any)["controlPlane"] = true },
		"bad chart digest":  func(m map[string]any) { m["chart"].(map[string]any)["digest"] = "sha256:" },
		"negative size":     func(m map[string]any) { m["chart"].(map[string]any)["size"] = -1 },
		"other key":         func(m map[string]any) { m["key"] = "00000000000000000000" },
		"pulled image":      func(m map[string]any) { m["images"].([]any)[0].(map[string]any)["pulled"] = "quay.io/x@sha256:00" },
		"inputs of another": func(m map[string]any) { m["inputs"].(map[string]any)["cilium"] = "1.18.0" },
	} {
		t.Run(name, func(t *testing.T) {
			c := Cache{Root: t.TempDir()}
			s := fakeCiliumSet(t, c, "1.18.1", "amd64")
			p := setPath(s.dir, s.Key)
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]any
			if err := json.Unmarshal(data, &m); err != nil {
				t.Fatal(err)
			}
			edit(m)
			if name == "edited inputs" || name == "inputs of another" {
				// Even with the key made to match, the set is refused
				// when its inputs contradict it.
				inputs := map[string]string{}
				for k, v := range m["inputs"].(map[string]any) {
					inputs[k] = v.(string)
				}
				if name == "edited inputs" {
					m["key"] = s.Key // the key no longer hashes them
				} else {
					m["key"] = inputKey(inputs)
					p = setPath(s.dir, m["key"].(string))
				}
			}
			data, _ = json.Marshal(m)
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
			key := strings.TrimSuffix(filepath.Base(p), ".json")
			if _, err := c.LoadCilium("1.18.1", key); err == nil {
				t.Errorf("LoadCilium accepted a set with %s", name)
			}
		})
	}
	t.Run("damaged blob", func(t *testing.T) {
		c := Cache{Root: t.TempDir()}
		s := fakeCiliumSet(t, c, "1.18.1", "amd64")
		if err := os.WriteFile(s.ChartPath(), []byte("other chart"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := c.LoadCilium("1.18.1", s.Key); err == nil || !strings.Contains(err.Error(), "corrupt") {
			t.Errorf("LoadCilium with a damaged chart: %v", err)
		}
		if _, err := c.FindCilium("1.18.1", "amd64"); err == nil {
			t.Error("FindCilium returned a set with a damaged chart")
		}
	})
}

func TestBuildCiliumRefusesBadOptions(t *testing.T) {
	c := Cache{Root: t.TempDir()}
	ctx := context.Background()
	for _, o := range []CiliumBuildOptions{
		{Version: "v1.18.1", Userland: "x"},
		{Version: "1.18", Userland: "x"},
		{Version: "1.18.1", Userland: "x", Arch: "riscv64"},
		{Version: "1.18.1"},
	} {
		if _, _, err := c.BuildCilium(ctx, o); err == nil {
			t.Errorf("BuildCilium(%+v): no error", o)
		}
	}
	if entries, _ := os.ReadDir(c.Root); len(entries) != 0 {
		t.Errorf("refused builds left %d entries in the cache", len(entries))
	}
}

func TestEnvoySHA(t *testing.T) {
	dir := t.TempDir()
	c := &ciliumBuilder{src: dir}
	if err := os.MkdirAll(filepath.Join(dir, "images", "cilium"), 0o755); err != nil {
		t.Fatal(err)
	}
	docker := "ARG CILIUM_BUILDER_IMAGE=quay.io/cilium/cilium-builder:74dd@sha256:ec10\n" +
		"ARG CILIUM_ENVOY_IMAGE=quay.io/cilium/cilium-envoy:v1.34.4-1754895458-68cffdfa568b6b226d70a7ef81fc65dda3b890bf@sha256:247e\n"
	if err := os.WriteFile(filepath.Join(dir, "images", "cilium", "Dockerfile"), []byte(docker), 0o644); err != nil {
		t.Fatal(err)
	}
	sha, err := c.envoySHA()
	if err != nil || sha != "68cffdfa568b6b226d70a7ef81fc65dda3b890bf" {
		t.Errorf("envoySHA = %q, %v", sha, err)
	}
}

// TestBuildCiliumForReal builds Cilium 1.18.1 from the module proxy with
// the node image's root file system (LAB_CILIUM_USERLAND, else the one in
// the default cache) into LAB_CILIUM_CACHE (else a temporary directory),
// then again, which must come from the cache. It takes tens of minutes on
// two cores, so it runs only with LAB_CILIUM_BUILD=1.
func TestBuildCiliumForReal(t *testing.T) {
	if os.Getenv("LAB_CILIUM_BUILD") != "1" {
		t.Skip("set LAB_CILIUM_BUILD=1 to build Cilium from source (tens of minutes)")
	}
	userland := os.Getenv("LAB_CILIUM_USERLAND")
	if userland == "" {
		var err error
		if userland, err = nodeimage.BaseTarball(""); err != nil {
			t.Fatal(err)
		}
	}
	root := os.Getenv("LAB_CILIUM_CACHE")
	if root == "" {
		root = t.TempDir()
	}
	version := os.Getenv("LAB_CILIUM_VERSION")
	if version == "" {
		version = "1.18.1"
	}
	c := Cache{Root: root}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Hour)
	defer cancel()
	o := CiliumBuildOptions{Version: version, Arch: runtime.GOARCH, Userland: userland, Log: testWriter{t}}
	start := time.Now()
	s, cached, err := c.BuildCilium(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first call: cached %v, %s", cached, time.Since(start).Round(time.Second))
	start = time.Now()
	again, cached, err := c.BuildCilium(ctx, o)
	if err != nil || !cached || again.Key != s.Key {
		t.Fatalf("second call: cached %v, %v", cached, err)
	}
	t.Logf("second call: cached in %s", time.Since(start).Round(time.Millisecond))
	for _, im := range s.Images {
		t.Logf("%s: %d bytes, %s", im.Ref, im.Size, s.Path(im.Digest))
	}
	t.Logf("chart: %d bytes, %s", s.Chart.Size, s.ChartPath())
}

// TestCiliumImageSpecs lays out the three images from stand-in programs
// and module files, and checks what the chart relies on: the programs on
// PATH, the scripts at /, the datapath sources where the agent looks,
// the environment and commands.
func TestCiliumImageSpecs(t *testing.T) {
	work := t.TempDir()
	c := newCiliumBuilder(CiliumBuildOptions{Version: "1.18.1", Arch: "amd64"}, work)
	for _, dir := range []string{c.out, filepath.Join(c.src, "bpf", "include"), filepath.Join(c.src, "images", "cilium"), filepath.Join(c.src, "plugins", "cilium-cni")} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var progs []ciliumProgram
	progs = append(append(append(progs, agentPrograms...), operatorPrograms...), relayPrograms...)
	for _, p := range append(progs, ciliumProgram{Path: "cni/loopback"}) {
		if err := os.WriteFile(filepath.Join(c.out, p.Name()), []byte(p.Name()), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"bpf/bpf_lxc.c", "bpf/include/bpf.h", "bpf/.gitignore"} {
		if err := os.WriteFile(filepath.Join(c.src, f), []byte(f), 0o444); err != nil {
			t.Fatal(err)
		}
	}
	for _, src := range ciliumScripts {
		if err := os.WriteFile(filepath.Join(c.src, src), []byte("#!/bin/sh\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	userland := []layerEntry{
		{Name: "usr/bin/clang-19", Link: "../lib/llvm-19/bin/clang"},
		{Name: "usr/bin", Mode: 0o755, Dir: true},
		{Name: "tmp", Mode: 0o755, Dir: true}, // lab's /tmp wins
	}
	certs := layerEntry{Name: caCertificates, Mode: 0o644, Data: []byte("CERTS")}
	specs, err := c.imageSpecs(userland, certs)
	if err != nil {
		t.Fatal(err)
	}
	refs := CiliumImageRefs("1.18.1")
	if len(specs) != 3 || specs[0].Ref != refs.Agent || specs[1].Ref != refs.Operator || specs[2].Ref != refs.Relay {
		t.Fatalf("specs %v", specs)
	}
	files := func(s imageSpec) map[string]layerEntry {
		m := map[string]layerEntry{}
		for _, e := range s.Files {
			m[e.Name] = e
		}
		return m
	}
	agent := files(specs[0])
	for _, name := range []string{
		"usr/bin/cilium-agent", "usr/bin/cilium-dbg", "usr/bin/cilium-health", "usr/bin/cilium-health-responder",
		"usr/bin/cilium-mount", "usr/bin/cilium-sysctlfix", "usr/bin/cilium-bugtool", "usr/bin/hubble",
		"opt/cni/bin/cilium-cni", "cni/loopback", "init-container.sh", "install-plugin.sh", "cni-uninstall.sh",
		"var/lib/cilium/bpf/bpf_lxc.c", "var/lib/cilium/bpf/include/bpf.h",
	} {
		e, ok := agent[name]
		if !ok || e.Src == "" {
			t.Errorf("agent image: no file %s", name)
		}
	}
	if e := agent["usr/bin/cilium"]; e.Link != "cilium-dbg" {
		t.Errorf("agent image: cilium is %+v, want a link to cilium-dbg", e)
	}
	if _, ok := agent["var/lib/cilium/bpf/.gitignore"]; ok {
		t.Error("agent image carries bpf/.gitignore")
	}
	if e := agent["tmp"]; e.Mode != 0o777|fs.ModeSticky {
		t.Errorf("agent image: /tmp mode %v", e.Mode)
	}
	if e := agent["var/lib/cilium"]; !e.Dir || e.Mode != 0o750 {
		t.Errorf("agent image: /var/lib/cilium %+v", e)
	}
	env := strings.Join(specs[0].Env, " ")
	if !strings.Contains(env, "HUBBLE_SERVER=unix:///var/run/cilium/hubble.sock") || !strings.Contains(env, "INITSYSTEM=SYSTEMD") {
		t.Errorf("agent image environment %q", env)
	}
	if specs[0].WorkingDir != "/home/cilium" || strings.Join(specs[0].Cmd, " ") != "/usr/bin/cilium-dbg" {
		t.Errorf("agent image: workdir %q cmd %q", specs[0].WorkingDir, specs[0].Cmd)
	}
	for _, s := range specs[1:] {
		f := files(s)
		if string(f[caCertificates].Data) != "CERTS" {
			t.Errorf("%s: no CA certificates", s.Ref)
		}
		if len(f) != 4 {
			t.Errorf("%s: %d entries, want the program, the certificates, /tmp and /home/gops", s.Ref, len(f))
		}
	}
	if specs[2].User != "65532:65532" || strings.Join(specs[2].Entrypoint, " ") != "/usr/bin/hubble-relay" || strings.Join(specs[2].Cmd, " ") != "serve" {
		t.Errorf("relay image: user %q entrypoint %q cmd %q", specs[2].User, specs[2].Entrypoint, specs[2].Cmd)
	}
	// Every image makes a valid layer, twice the same.
	for _, s := range specs {
		var ids []string
		for i := 0; i < 2; i++ {
			id, err := writeImage(filepath.Join(work, "img.tar"), work, s)
			if err != nil {
				t.Fatalf("%s: %v", s.Ref, err)
			}
			ids = append(ids, id)
		}
		if ids[0] != ids[1] {
			t.Errorf("%s: two writes differ", s.Ref)
		}
	}
}
