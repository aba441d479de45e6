package artifacts

import (
	"archive/zip"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestModuleHash1MatchesGo: the hash of a module zip the go command
// downloaded and checked equals what the checksum database says.
func TestModuleHash1MatchesGo(t *testing.T) {
	out, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Skip("no go command")
	}
	zipPath := filepath.Join(strings.TrimSpace(string(out)), "cache/download/github.com/cilium/cilium/@v/v1.18.1.zip")
	if _, err := os.Stat(zipPath); err != nil {
		t.Skip("Cilium 1.18.1's module is not in the module cache")
	}
	got, err := moduleHash1(zipPath)
	if err != nil {
		t.Fatal(err)
	}
	if want := ciliumModuleSums["1.18.1"]; got != want {
		t.Errorf("h1 %s, want %s", got, want)
	}
}

// writeModuleZip writes a module zip of cilium version with files.
func writeModuleZip(t *testing.T, path, version string, files map[string]string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := zip.NewWriter(f)
	for name, content := range files {
		fw, err := w.Create(ciliumModule + "@v" + version + "/" + name)
		if err != nil {
			t.Fatal(err)
		}
		fw.Write([]byte(content))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// TestDownloadCiliumModule: a zip whose hash is not the checksum
// database's is refused and left nowhere; an unknown version is refused
// before any download.
func TestDownloadCiliumModule(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.zip")
	writeModuleZip(t, src, "1.18.1", map[string]string{"install/kubernetes/cilium/Chart.yaml": "name: cilium\n"})
	var asked []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked = append(asked, r.URL.Path)
		http.ServeFile(w, r, src)
	}))
	defer srv.Close()
	dst := filepath.Join(dir, "cilium.zip")
	err := downloadCiliumModule(context.Background(), srv.URL, "1.18.1", dst)
	if err == nil || !strings.Contains(err.Error(), "checksum database") {
		t.Fatalf("tampered zip: %v", err)
	}
	if _, err := os.Stat(dst); err == nil {
		t.Error("a refused zip was kept")
	}
	if len(asked) != 1 || asked[0] != "/github.com/cilium/cilium/@v/v1.18.1.zip" {
		t.Errorf("asked for %v", asked)
	}
	if err := downloadCiliumModule(context.Background(), srv.URL, "1.16.0", dst); err == nil || !strings.Contains(err.Error(), "1.18.1") {
		t.Errorf("unknown version: %v", err)
	}
	if len(asked) != 1 {
		t.Errorf("an unknown version was downloaded")
	}

	out := filepath.Join(dir, "chart")
	if err := extractModuleDir(src, "1.18.1", "install/kubernetes/cilium", out); err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(filepath.Join(out, "Chart.yaml")); err != nil || string(data) != "name: cilium\n" {
		t.Errorf("extracted Chart.yaml: %q %v", data, err)
	}
	if err := extractModuleDir(src, "1.18.1", "install/kubernetes/nothing", out); err == nil {
		t.Error("a missing directory extracted without error")
	}
}

func TestGoProxy(t *testing.T) {
	for list, want := range map[string]string{
		"https://a.example/,direct":   "https://a.example",
		"off|http://b.example":        "http://b.example",
		"direct":                      DefaultGoProxy,
		"file:///x,https://c.example": "https://c.example",
	} {
		if got := goProxy(list); got != want {
			t.Errorf("goProxy(%q) = %q, want %q", list, got, want)
		}
	}
}

// TestCiliumChartFromModule serves the real 1.18.1 module zip (from the
// module cache) as a Go proxy would: CiliumChart makes a chart-only set
// once, and finds it the second time without asking the proxy again.
func TestCiliumChartFromModule(t *testing.T) {
	out, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Skip("no go command")
	}
	zipPath := filepath.Join(strings.TrimSpace(string(out)), "cache/download/github.com/cilium/cilium/@v/v1.18.1.zip")
	if _, err := os.Stat(zipPath); err != nil {
		t.Skip("Cilium 1.18.1's module is not in the module cache")
	}
	asked := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked++
		http.ServeFile(w, r, zipPath)
	}))
	defer srv.Close()
	c := Cache{Root: t.TempDir()}
	o := CiliumChartOptions{Version: "1.18.1", Arch: "amd64", Proxy: srv.URL}
	s, cached, err := c.CiliumChart(context.Background(), o)
	if err != nil || cached {
		t.Fatalf("CiliumChart: %v (cached %v)", err, cached)
	}
	if s.Source != SourceRelease || len(s.Images) != 0 || s.Chart.Size == 0 {
		t.Errorf("set: source %s, %d images, chart %d bytes", s.Source, len(s.Images), s.Chart.Size)
	}
	if _, err := os.Stat(s.ChartPath()); err != nil {
		t.Error(err)
	}
	again, cached, err := c.CiliumChart(context.Background(), o)
	if err != nil || !cached || again.Chart != s.Chart || asked != 1 {
		t.Errorf("second call: %v, cached %v, proxy asked %d times", err, cached, asked)
	}
}
