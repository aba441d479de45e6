package artifacts

import (
	"archive/zip"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// ciliumModule is the Go module Cilium's sources, and its chart, come in.
const ciliumModule = "github.com/cilium/cilium"

// ciliumModuleSums are the Go checksum database's hashes (h1, the hash
// `go mod download` checks) of the github.com/cilium/cilium module zips lab
// knows, as sum.golang.org had them on 2026-12-03. A zip from any proxy is
// used only when it hashes to its version's entry, so a proxy or a mirror
// can withhold the chart but not change it.
var ciliumModuleSums = map[string]string{
	"1.17.6": "h1:5BgAhTKJH2rzsipQL1/GzEVRmKEujMvcFD+zcMZqLHU=",
	"1.18.0": "h1:KdWgc6Jl5NmWpJGCRm69TogMgeZNFaCAxtPgBHtv33A=",
	"1.18.1": "h1:RQiDhd3eqjxWjnsdzMeS80rScwBKiZ+rMd/1OnBtoOI=",
	"1.18.2": "h1:ZqxNBoVLMYbJIYiKXWXna5kxd4XiE9IRww9vdaKJZoo=",
	"1.18.3": "h1:E0SnxNDeWJ3AtO6IX0oIsJdODT71M/QCcj9LjuLdGK0=",
	"1.18.4": "h1:/HrbeMmk46UDkJs4uJemIqxB7wuZ+QRMNVscNYua5C8=",
	"1.18.5": "h1:YLgoehlIEuW/yIpDprx696sAr78Upmvb+FSQsYQd3PI=",
	"1.18.6": "h1:acz5aRKhZbarCO1flx2vCP9wBh+lDc02uJgdqiTsJbA=",
	"1.19.0": "h1:hfPhb9TcoG3fRMA1/ExBFihEX1NpEWcUaV1jXJTkQVo=",
}

// CiliumVersions lists the Cilium versions whose module lab can check.
func CiliumVersions() []string {
	out := make([]string, 0, len(ciliumModuleSums))
	for v := range ciliumModuleSums {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

// DefaultGoProxy is where module zips come from when GOPROXY names no
// proxy lab can use.
const DefaultGoProxy = "https://proxy.golang.org"

// goProxy returns the first HTTP(S) proxy of a GOPROXY list ("" for the
// environment's), or DefaultGoProxy.
func goProxy(list string) string {
	if list == "" {
		list = os.Getenv("GOPROXY")
	}
	for _, p := range strings.FieldsFunc(list, func(r rune) bool { return r == ',' || r == '|' }) {
		if strings.HasPrefix(p, "https://") || strings.HasPrefix(p, "http://") {
			return strings.TrimRight(p, "/")
		}
	}
	return DefaultGoProxy
}

// downloadCiliumModule fetches the module zip of Cilium version from proxy
// into dst and checks it against ciliumModuleSums. It needs no go command:
// a study member's laptop has lab and nothing else.
func downloadCiliumModule(ctx context.Context, proxy, version, dst string) error {
	want, ok := ciliumModuleSums[version]
	if !ok {
		return fmt.Errorf("Cilium %s: lab knows the module hashes of Cilium %s only; pick one of them in cni.cilium.version",
			version, strings.Join(CiliumVersions(), ", "))
	}
	return downloadModule(ctx, proxy, ciliumModule, "v"+version, want, dst)
}

// downloadModule fetches the zip of module at version (with its "v") from
// proxy into dst, and keeps it only when it has the Go checksum database's
// hash want.
func downloadModule(ctx context.Context, proxy, module, version, want, dst string) error {
	url := fmt.Sprintf("%s/%s/@v/%s.zip", goProxy(proxy), module, version)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("download %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("download %s: %s", url, resp.Status)
	}
	f, err := os.CreateTemp(filepath.Dir(dst), filepath.Base(dst)+".part-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("download %s: %w", url, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	got, err := moduleHash1(f.Name())
	if err != nil {
		return fmt.Errorf("%s: %w", url, err)
	}
	if got != want {
		return fmt.Errorf("%s hashes to %s, but the Go checksum database says %s: the proxy served a different module; not used", url, got, want)
	}
	return os.Rename(f.Name(), dst)
}

// moduleHash1 is the Go checksum database's "h1" hash of a module zip: the
// SHA-256 of a summary listing each file's SHA-256 and name, sorted by
// name (golang.org/x/mod/sumdb/dirhash's Hash1 over the zip's files).
func moduleHash1(zipPath string) (string, error) {
	z, err := zip.OpenReader(zipPath)
	if err != nil {
		return "", err
	}
	defer z.Close()
	files := make([]*zip.File, 0, len(z.File))
	for _, f := range z.File {
		if strings.HasSuffix(f.Name, "/") {
			continue
		}
		if strings.Contains(f.Name, "\n") {
			return "", fmt.Errorf("file name %q has a newline", f.Name)
		}
		files = append(files, f)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	summary := sha256.New()
	for _, f := range files {
		r, err := f.Open()
		if err != nil {
			return "", fmt.Errorf("%s: %w", f.Name, err)
		}
		h := sha256.New()
		_, err = io.Copy(h, r)
		r.Close()
		if err != nil {
			return "", fmt.Errorf("%s: %w", f.Name, err)
		}
		fmt.Fprintf(summary, "%x  %s\n", h.Sum(nil), f.Name)
	}
	return "h1:" + base64.StdEncoding.EncodeToString(summary.Sum(nil)), nil
}

// extractModuleDir writes the files of Cilium's module zip under dir (a
// path in the module, e.g. install/kubernetes/cilium) to dst, keeping the
// tree.
func extractModuleDir(zipPath, version, dir, dst string) error {
	return extractModuleTree(zipPath, ciliumModule, "v"+version, dir, dst)
}

// extractModuleTree writes the files under dir of the zip of module at
// version (with its "v") to dst, keeping the tree.
func extractModuleTree(zipPath, module, version, dir, dst string) error {
	z, err := zip.OpenReader(zipPath)
	if err != nil {
		return err
	}
	defer z.Close()
	prefix := module + "@" + version + "/" + strings.Trim(dir, "/") + "/"
	n := 0
	for _, f := range z.File {
		rel, ok := strings.CutPrefix(f.Name, prefix)
		if !ok || rel == "" || strings.HasSuffix(rel, "/") {
			continue
		}
		if !filepath.IsLocal(rel) {
			return fmt.Errorf("%s: %s leaves the directory", zipPath, f.Name)
		}
		out := filepath.Join(dst, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		if err := writeZipFile(f, out); err != nil {
			return err
		}
		n++
	}
	if n == 0 {
		return errors.New(zipPath + ": no " + dir + " in the module")
	}
	return nil
}

func writeZipFile(f *zip.File, out string) error {
	r, err := f.Open()
	if err != nil {
		return fmt.Errorf("%s: %w", f.Name, err)
	}
	defer r.Close()
	w, err := os.OpenFile(out, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, r); err != nil {
		w.Close()
		return fmt.Errorf("%s: %w", f.Name, err)
	}
	return w.Close()
}

// CiliumChartOptions configure CiliumChart.
type CiliumChartOptions struct {
	// Version is the Cilium version without "v", e.g. 1.18.1.
	Version string
	// Arch is the nodes' architecture (the set is named for it; the
	// chart itself is the same for every architecture).
	Arch string
	// Proxy is a GOPROXY list; default: the environment's, else
	// DefaultGoProxy.
	Proxy string
	// Log receives progress lines.
	Log io.Writer
}

// CiliumChart returns a set holding only the chart of Cilium o.Version,
// for labs whose nodes pull upstream's images (packages, release): taken
// from the github.com/cilium/cilium module zip, which is downloaded from
// a Go proxy once and used only when it has the checksum database's hash.
// The chart never comes from a Helm repository.
func (c Cache) CiliumChart(ctx context.Context, o CiliumChartOptions) (*CiliumSet, bool, error) {
	if err := CheckCiliumVersion(o.Version); err != nil {
		return nil, false, err
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if _, _, err := elfArch(o.Arch); err != nil {
		return nil, false, err
	}
	sum, ok := ciliumModuleSums[o.Version]
	if !ok {
		return nil, false, fmt.Errorf("Cilium %s: lab knows the module hashes of Cilium %s only; pick one of them in cni.cilium.version",
			o.Version, strings.Join(CiliumVersions(), ", "))
	}
	inputs := map[string]string{
		"recipe": ciliumRecipe,
		"source": SourceRelease,
		"cilium": o.Version,
		"arch":   o.Arch,
		"module": sum,
	}
	return c.makeCilium(o.Version, inputs, false, o.Log, func(s *CiliumSet, work string) error {
		zipPath := filepath.Join(work, "cilium.zip")
		fmt.Fprintf(o.Log, "artifacts: downloading the %s@v%s module from %s for its chart\n", ciliumModule, o.Version, goProxy(o.Proxy))
		if err := downloadCiliumModule(ctx, o.Proxy, o.Version, zipPath); err != nil {
			return err
		}
		dir := filepath.Join(work, "chart")
		if err := extractModuleDir(zipPath, o.Version, "install/kubernetes/cilium", dir); err != nil {
			return err
		}
		tgz := filepath.Join(work, "cilium-"+o.Version+".tgz")
		if err := packChart(dir, tgz, "cilium", o.Version); err != nil {
			return err
		}
		digest, size, err := putBlob(s.dir, tgz)
		if err != nil {
			return err
		}
		s.Chart = Blob{Digest: digest, Size: size}
		return nil
	})
}
