package artifacts

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeAddonSet stores a set of add-on name v0.8.0 in c as GatherAddon
// would, with small stand-ins for the blobs.
func fakeAddonSet(t *testing.T, c Cache, name string) *AddonSet {
	t.Helper()
	dir := c.addonDir(name, "v0.8.0")
	tmp := t.TempDir()
	blob := func(content string) Blob {
		p := filepath.Join(tmp, "blob")
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		d, size, err := putBlob(dir, p)
		if err != nil {
			t.Fatal(err)
		}
		return Blob{Digest: d, Size: size}
	}
	inputs := map[string]string{"recipe": addonRecipe, "source": SourceBuild, "addon": name, "module": "example.com/" + name,
		"version": "v0.8.0", "arch": "amd64", "go": "go1.26.8"}
	im := blob("image " + name)
	s := &AddonSet{Name: name, Version: "v0.8.0", Arch: "amd64", Source: SourceBuild, Key: inputKey(inputs), Inputs: inputs,
		Images: []Image{{Ref: AddonImageRef(name, "v0.8.0"), Digest: im.Digest, Size: im.Size, ID: "sha256:" + strings.Repeat("ab", 32)}},
		Chart:  blob("chart"), ChartVersion: "3.12.2", Helm: blob("helm"), dir: dir}
	data, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(setPath(dir, s.Key), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestAddonSetCheck loads a good set, then refuses every set lab would
// not have made: another add-on's, an image under another name, an
// edited key, a damaged blob.
func TestAddonSetCheck(t *testing.T) {
	c := Cache{Root: t.TempDir()}
	s := fakeAddonSet(t, c, "metrics-server")
	loaded, err := c.LoadAddon("metrics-server", "v0.8.0", s.Key)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.ChartPath() != s.ChartPath() || loaded.HelmPath() == "" || len(loaded.Images) != 1 {
		t.Errorf("loaded set %+v", loaded)
	}
	for name, edit := range map[string]func(m map[string]any){
		"unknown field": func(m map[string]any) { m["binaries"] = []any{} },
		"other add-on":  func(m map[string]any) { m["name"] = "local-path-provisioner" },
		"renamed image": func(m map[string]any) {
			m["images"].([]any)[0].(map[string]any)["ref"] = "registry.k8s.io/metrics-server/metrics-server:v0.8.0"
		},
		"no image":      func(m map[string]any) { m["images"] = []any{} },
		"edited inputs": func(m map[string]any) { m["inputs"].(map[string]any)["go"] = "go1.0" },
		"no chart":      func(m map[string]any) { m["chartVersion"] = "" },
		"bad helm":      func(m map[string]any) { m["helm"].(map[string]any)["digest"] = "md5:00" },
	} {
		t.Run(name, func(t *testing.T) {
			c := Cache{Root: t.TempDir()}
			s := fakeAddonSet(t, c, "metrics-server")
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
			data, _ = json.Marshal(m)
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := c.LoadAddon("metrics-server", "v0.8.0", s.Key); err == nil {
				t.Errorf("LoadAddon accepted a set with %s", name)
			}
		})
	}
	t.Run("damaged blob", func(t *testing.T) {
		c := Cache{Root: t.TempDir()}
		s := fakeAddonSet(t, c, "metrics-server")
		if err := os.WriteFile(s.Path(s.Images[0].Digest), []byte("other image"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := c.LoadAddon("metrics-server", "v0.8.0", s.Key); err == nil || !strings.Contains(err.Error(), "corrupt") {
			t.Errorf("LoadAddon with a damaged image: %v", err)
		}
	})
}

func TestAddonOptionsRefused(t *testing.T) {
	for _, o := range []AddonOptions{
		{Name: "metrics-server", Module: "sigs.k8s.io/metrics-server", Version: "0.8.0"},
		{Name: "metrics-server", Module: "sigs.k8s.io/metrics-server", Version: "latest"},
		{Name: "grafana", Module: "github.com/grafana/grafana", Version: "v12.0.0"},
		{Name: "Metrics", Module: "sigs.k8s.io/metrics-server", Version: "v0.8.0"},
	} {
		if _, _, err := (Cache{Root: t.TempDir()}).GatherAddon(t.Context(), o); err == nil {
			t.Errorf("GatherAddon(%+v) did not refuse", o)
		}
	}
}

// moduleZip writes a module zip of sigs.k8s.io/metrics-server v0.8.0
// holding a small chart, and returns it with its h1 hash.
func moduleZip(t *testing.T, chartVersion string) ([]byte, string) {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	prefix := "sigs.k8s.io/metrics-server@v0.8.0/"
	for name, content := range map[string]string{
		"go.mod":                           "module sigs.k8s.io/metrics-server\n",
		"charts/metrics-server/Chart.yaml": "apiVersion: v2\nname: metrics-server\nversion: " + chartVersion + "\n",
		"charts/metrics-server/templates/deployment.yaml": "kind: Deployment\n",
		"cmd/metrics-server/main.go":                      "package main\n",
	} {
		w, err := zw.Create(prefix + name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(content)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "m.zip")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	sum, err := moduleHash1(p)
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), sum
}

// A lab whose nodes pull images takes a builtin's chart from the module
// proxy, with no go command, and only a zip with the known hash.
func TestGatherAddonChartWithoutGo(t *testing.T) {
	good, sum := moduleZip(t, "3.12.2")
	other, _ := moduleZip(t, "9.9.9")
	serve := good
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/sigs.k8s.io/metrics-server/@v/v0.8.0.zip" {
			http.NotFound(w, r)
			return
		}
		w.Write(serve)
	}))
	defer srv.Close()
	o := AddonOptions{Name: "metrics-server", Module: "sigs.k8s.io/metrics-server", Version: "v0.8.0", Arch: "amd64",
		Source: SourceRelease, Go: "/nonexistent/go", Proxy: srv.URL, moduleSum: sum}
	c := Cache{Root: t.TempDir()}
	s, found, err := c.GatherAddon(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	if found || s.ChartVersion != "3.12.2" || len(s.Images) != 0 || s.HelmPath() != "" {
		t.Errorf("set %+v (found %v): want the chart alone", s, found)
	}
	if _, found, err := c.GatherAddon(t.Context(), o); err != nil || !found {
		t.Errorf("second gather: found %v, %v; want the cached set", found, err)
	}
	serve = other
	o.Force = true
	if _, _, err := c.GatherAddon(t.Context(), o); err == nil || !strings.Contains(err.Error(), "checksum database") {
		t.Errorf("a zip with another hash: %v, want it refused", err)
	}
}
