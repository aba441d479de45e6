package artifacts

import (
	"encoding/json"
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
