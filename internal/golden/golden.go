// Package golden is the test harness for golden files shared by the
// packages that render what nodes receive: it loads the example labs and
// compares a rendered tree of files with a directory of golden files, or
// rewrites that directory when the test runs with -update.
package golden

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/labctl/lab/provision/labfile"
)

// Labs loads every lab file matching the globs (e.g. "../../labs/*.yaml",
// "../../labs/*/*.yaml"), keyed by file name without .yaml, prefixed with
// its folder and a dash when it is in a folder of labs/ (cilium-study-4w).
// Every one must load cleanly.
func Labs(t testing.TB, globs ...string) map[string]*labfile.Lab {
	t.Helper()
	out := map[string]*labfile.Lab{}
	for _, glob := range globs {
		paths, err := filepath.Glob(glob)
		if err != nil || len(paths) == 0 {
			t.Fatalf("no lab files match %s: %v", glob, err)
		}
		for _, p := range paths {
			l, _, err := labfile.Load(p)
			if err != nil {
				t.Fatalf("load %s: %v", p, err)
			}
			out[LabKey(p)] = l
		}
	}
	return out
}

// LabKey names the lab file at path as Labs keys it.
func LabKey(path string) string {
	name := strings.TrimSuffix(filepath.Base(path), ".yaml")
	if dir := filepath.Base(filepath.Dir(path)); dir != "labs" {
		name = dir + "-" + name
	}
	return name
}

// Names returns the keys of labs in order, so subtests run in a stable order.
func Names(labs map[string]*labfile.Lab) []string {
	names := make([]string, 0, len(labs))
	for k := range labs {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// File is one rendered file: an absolute node path, its mode and content.
type File struct {
	Path    string
	Mode    fs.FileMode
	Content []byte
}

// Manifest lists files with their modes, one per line, so that a golden
// test also catches a file that appears, disappears or changes mode.
func Manifest(files []File) []byte {
	var b bytes.Buffer
	for _, f := range files {
		fmt.Fprintf(&b, "%04o %s\n", f.Mode.Perm(), f.Path)
	}
	return b.Bytes()
}

// Tree compares files (plus their Manifest, as FILES) with the golden
// directory dir, reporting every missing, extra and different file. With
// update it rewrites dir instead; hint is the command that does that.
func Tree(t testing.TB, dir string, files []File, update bool, hint string) {
	t.Helper()
	want := map[string][]byte{"FILES": Manifest(files)}
	for _, f := range files {
		want[filepath.FromSlash(strings.TrimPrefix(f.Path, "/"))] = f.Content
	}
	if update {
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		for rel, content := range want {
			p := filepath.Join(dir, rel)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, content, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	have := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p == dir {
			return nil
		}
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		have[rel], err = os.ReadFile(p)
		return err
	})
	if err != nil {
		t.Fatalf("read golden files (run %s): %v", hint, err)
	}
	for rel, content := range want {
		got, ok := have[rel]
		switch {
		case !ok:
			t.Errorf("%s: no golden file (run %s)", rel, hint)
		case !bytes.Equal(got, content):
			t.Errorf("%s differs from its golden file (run %s and review the diff):\n%s", rel, hint, content)
		}
	}
	for rel := range have {
		if _, ok := want[rel]; !ok {
			t.Errorf("%s: golden file for a file the node no longer gets (run %s)", rel, hint)
		}
	}
}
