package artifacts

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// packChart writes the Helm chart in dir as a .tgz at dst, laid out as
// `helm package` lays it out — every file under a top directory named
// after the chart, files matched by the chart's .helmignore left out — but
// reproducibly: sorted, owned by root, stamped with the epoch, with
// fixed modes and a gzip header without name or time. The chart's
// Chart.yaml must name the chart want, at version unless version is "".
func packChart(dir, dst, want, version string) error {
	chartYAML, err := os.ReadFile(filepath.Join(dir, "Chart.yaml"))
	if err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	name, v := chartField(chartYAML, "name"), chartField(chartYAML, "version")
	if name != want || (version != "" && v != version) || v == "" {
		return fmt.Errorf("chart: %s/Chart.yaml is chart %q version %q, not %s %s", dir, name, v, want, version)
	}
	ignore, err := readHelmignore(filepath.Join(dir, ".helmignore"))
	if err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	var files []string
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		if ignore.match(rel, d.IsDir()) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() {
			files = append(files, rel)
		} else if !d.IsDir() {
			return fmt.Errorf("%s is neither a file nor a directory", rel)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	sort.Strings(files)

	out, err := os.Create(dst)
	if err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	defer out.Close()
	bw := bufio.NewWriter(out)
	zw, err := gzip.NewWriterLevel(bw, gzip.BestCompression)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(zw)
	for _, rel := range files {
		data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(rel)))
		if err != nil {
			return fmt.Errorf("chart: %w", err)
		}
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: path.Join(name, rel), Mode: 0o644, Size: int64(len(data)), ModTime: epoch, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("chart: %w", err)
		}
		if _, err := tw.Write(data); err != nil {
			return fmt.Errorf("chart: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	return out.Close()
}

// chartField is a top-level scalar of Chart.yaml ("name: cilium"), quotes
// removed; "" when absent. Enough for name and version, which Helm
// requires to be plain scalars.
func chartField(chartYAML []byte, field string) string {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(field) + `:[ \t]*(.*?)[ \t]*$`).FindSubmatch(chartYAML)
	if m == nil {
		return ""
	}
	return strings.Trim(string(m[1]), `"'`)
}

// helmignore is a chart's .helmignore: one pattern a line, "#" comments,
// "!" negating, a trailing "/" matching directories only, and a pattern
// with a "/" in it matched against the whole path, else against the
// base name; the last matching pattern decides.
type helmignore []ignorePattern

type ignorePattern struct {
	pattern string
	negate  bool
	dirOnly bool
}

func readHelmignore(p string) (helmignore, error) {
	data, err := os.ReadFile(p)
	if os.IsNotExist(err) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var out helmignore
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var ip ignorePattern
		if rest, ok := strings.CutPrefix(line, "!"); ok {
			ip.negate, line = true, rest
		}
		if rest, ok := strings.CutSuffix(line, "/"); ok {
			ip.dirOnly, line = true, rest
		}
		ip.pattern = strings.TrimPrefix(line, "/")
		if _, err := path.Match(ip.pattern, ""); err != nil {
			return nil, fmt.Errorf("%s: pattern %q: %w", p, sc.Text(), err)
		}
		out = append(out, ip)
	}
	return out, sc.Err()
}

// match reports whether the chart path rel (slash-separated) is ignored.
func (h helmignore) match(rel string, dir bool) bool {
	ignored := false
	for _, ip := range h {
		if ip.dirOnly && !dir {
			continue
		}
		subject := path.Base(rel)
		if strings.Contains(ip.pattern, "/") {
			subject = rel
		}
		if ok, _ := path.Match(ip.pattern, subject); ok {
			ignored = !ip.negate
		}
	}
	return ignored
}

// PackChart packs the chart directory dir into the .tgz dst, as helm
// package does, for a lab file's chart add-on; it returns the chart's name
// and version from its Chart.yaml.
func PackChart(dir, dst string) (name, version string, err error) {
	chartYAML, err := os.ReadFile(filepath.Join(dir, "Chart.yaml"))
	if err != nil {
		return "", "", fmt.Errorf("chart: %w", err)
	}
	name, version = chartField(chartYAML, "name"), chartField(chartYAML, "version")
	if err := packChart(dir, dst, name, version); err != nil {
		return "", "", err
	}
	return name, version, nil
}

// ChartNameVersion reads the name and version of the chart directory dir
// from its Chart.yaml.
func ChartNameVersion(dir string) (name, version string, err error) {
	chartYAML, err := os.ReadFile(filepath.Join(dir, "Chart.yaml"))
	if err != nil {
		return "", "", fmt.Errorf("chart: %w", err)
	}
	return chartField(chartYAML, "name"), chartField(chartYAML, "version"), nil
}
