package artifacts

import (
	"os"
	"path/filepath"
	"testing"
)

// TestLayout pins the cache directory's layout: caches already on disk
// and bundles already made use these names.
func TestLayout(t *testing.T) {
	l := Layout{Root: "/cache/lab"}
	if got, want := l.ArtifactsDir(), "/cache/lab/artifacts"; got != want {
		t.Errorf("ArtifactsDir() = %s, want %s", got, want)
	}
	if got, want := l.Cache().Root, "/cache/lab/artifacts"; got != want {
		t.Errorf("Cache().Root = %s, want %s", got, want)
	}
	if got, want := l.NodeImageDir(), "/cache/lab/nodeimage"; got != want {
		t.Errorf("NodeImageDir() = %s, want %s", got, want)
	}
	e := NodeImageExtra(filepath.Join(l.NodeImageDir(), "base-0123abcd.tar"))
	if e.Path != "nodeimage/base-0123abcd.tar" || !bundlePath.MatchString(e.Path) {
		t.Errorf("NodeImageExtra gives %q, which a bundle must hold as nodeimage/base-0123abcd.tar", e.Path)
	}
}

func TestNewLayout(t *testing.T) {
	l, err := NewLayout("/somewhere")
	if err != nil || l.Root != "/somewhere" {
		t.Errorf("NewLayout(/somewhere) = %+v, %v", l, err)
	}
	t.Setenv("XDG_CACHE_HOME", "/xdg")
	t.Setenv("HOME", "/home/u")
	user, err := os.UserCacheDir()
	if err != nil {
		t.Skip(err)
	}
	l, err = NewLayout("")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(user, "lab"); l.Root != want {
		t.Errorf("NewLayout(\"\") = %s, want %s", l.Root, want)
	}
}
