package nodeimage

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
)

// DetectMirror returns the Debian mirror this machine's apt uses (under
// root, normally "/"), so the image is built from a mirror known to be
// reachable here. It falls back to DefaultMirror.
func DetectMirror(root string) string {
	files := []string{filepath.Join(root, "etc/apt/sources.list")}
	for _, pattern := range []string{"etc/apt/sources.list.d/*.list", "etc/apt/sources.list.d/*.sources"} {
		m, _ := filepath.Glob(filepath.Join(root, pattern))
		files = append(files, m...)
	}
	for _, f := range files {
		if u := debianURI(f); u != "" {
			return u
		}
	}
	return DefaultMirror
}

// debianURI returns the first URI in an apt source file (one-line or deb822
// format) that serves the main Debian archive, not its security or
// backports archives.
func debianURI(file string) string {
	f, err := os.Open(file)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var uris []string
		switch {
		case strings.HasPrefix(line, "deb "):
			for _, fld := range strings.Fields(line)[1:] {
				if strings.HasPrefix(fld, "[") || strings.HasSuffix(fld, "]") || strings.Contains(fld, "=") {
					continue // [options]
				}
				uris = append(uris, fld)
				break
			}
		case strings.HasPrefix(strings.ToLower(line), "uris:"):
			uris = strings.Fields(line[len("uris:"):])
		}
		for _, u := range uris {
			u = strings.TrimRight(u, "/")
			if strings.HasPrefix(u, "http") && strings.HasSuffix(u, "/debian") {
				return u
			}
		}
	}
	return ""
}
