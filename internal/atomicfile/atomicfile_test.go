package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

func TestWriteFileReplacesWithExactPerm(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "secrets.json")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(path, []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(path); err != nil || string(data) != "new" {
		t.Fatalf("content = %q, %v; want new", data, err)
	}
	if runtime.GOOS != "windows" {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("mode = %v; want 0600", fi.Mode().Perm())
		}
	}
	assertOnly(t, dir, "secrets.json")
}

func TestDiscardLeavesTheOldFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Create(path, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("half")); err != nil {
		t.Fatal(err)
	}
	f.Discard()
	f.Discard()
	if data, _ := os.ReadFile(path); string(data) != "old" {
		t.Fatalf("content = %q after Discard; want old", data)
	}
	assertOnly(t, dir, "f")
}

func TestCommitThenDiscardKeepsTheNewFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	f, err := Create(path, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Discard()
	if _, err := f.Write([]byte("#!/bin/sh\n")); err != nil {
		t.Fatal(err)
	}
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	f.Discard()
	if data, _ := os.ReadFile(path); string(data) != "#!/bin/sh\n" {
		t.Fatalf("content = %q", data)
	}
	if fi, _ := os.Stat(path); runtime.GOOS != "windows" && fi.Mode().Perm() != 0o755 {
		t.Errorf("mode = %v; want 0755", fi.Mode().Perm())
	}
	assertOnly(t, dir, "f")
}

func TestReplace(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "base.tar")
	tmp := path + ".part"
	if err := os.WriteFile(tmp, []byte("tar"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Replace(tmp, path); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(path); string(data) != "tar" {
		t.Fatalf("content = %q", data)
	}
	assertOnly(t, dir, "base.tar")
	if err := Replace(tmp, path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Replace of a missing file = %v; want ErrNotExist", err)
	}
}

func TestCreateInMissingDirectory(t *testing.T) {
	if _, err := Create(filepath.Join(t.TempDir(), "no", "f"), 0o600); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Create = %v; want ErrNotExist", err)
	}
}

// assertOnly fails unless dir holds exactly the file name: no temporary
// file is left behind.
func assertOnly(t *testing.T, dir, name string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != name {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %q; want only %q", names, name)
	}
}
