package e2etest

import (
	"archive/tar"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// TestScratchImage reads the archive back as an image: the tag, the
// platform ctr matches on, the entrypoint, and the program as the one file
// of the file system, executable.
func TestScratchImage(t *testing.T) {
	dir := t.TempDir()
	program := filepath.Join(dir, "prog")
	content := []byte("#!not really a program\n")
	if err := os.WriteFile(program, content, 0o644); err != nil {
		t.Fatal(err)
	}
	const ref = "lab.local/netcheck:e2e"
	dst := filepath.Join(dir, "image.tar")
	if err := ScratchImage(program, "netcheck", ref, dst); err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(dst, &tag)
	if err != nil {
		t.Fatalf("the archive has no image %s: %v", ref, err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.OS != "linux" || cfg.Architecture != runtime.GOARCH {
		t.Errorf("platform %s/%s, want linux/%s", cfg.OS, cfg.Architecture, runtime.GOARCH)
	}
	if want := []string{"/netcheck"}; !slices.Equal(cfg.Config.Entrypoint, want) {
		t.Errorf("entrypoint %q, want %q", cfg.Config.Entrypoint, want)
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	var files []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, h.Name)
		if h.Name == "netcheck" {
			if h.Mode&0o111 == 0 {
				t.Errorf("netcheck has mode %o, not executable", h.Mode)
			}
			got, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(content) {
				t.Errorf("netcheck in the image is %q, want %q", got, content)
			}
		}
	}
	if !slices.Equal(files, []string{"netcheck"}) {
		t.Errorf("files in the image %q, want only netcheck", files)
	}
}

func TestScratchImageNeedsRegistry(t *testing.T) {
	dir := t.TempDir()
	program := filepath.Join(dir, "prog")
	if err := os.WriteFile(program, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := ScratchImage(program, "prog", "netcheck", filepath.Join(dir, "image.tar")); err == nil {
		t.Error("an image named without its registry and tag was accepted")
	}
}
