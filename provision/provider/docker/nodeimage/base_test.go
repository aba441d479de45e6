package nodeimage_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/labctl/lab/provision/provider/docker/nodeimage"
)

// TestBuildBase makes the node image's Debian root file system with
// debootstrap alone, no Docker, into the cache directory named by
// LAB_NODEIMAGE_BASE_DIR; skipped without it, since it downloads several
// hundred MB of packages and needs root. A second call must find it.
func TestBuildBase(t *testing.T) {
	dir := os.Getenv("LAB_NODEIMAGE_BASE_DIR")
	if dir == "" {
		t.Skip("set LAB_NODEIMAGE_BASE_DIR to a cache directory to run debootstrap")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	start := time.Now()
	p, cached, err := nodeimage.BuildBase(ctx, nodeimage.Options{CacheDir: dir, Log: testLog{t}})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d bytes, cached %v, %s", p, fi.Size(), cached, time.Since(start).Round(time.Second))
	again, cached, err := nodeimage.BuildBase(ctx, nodeimage.Options{CacheDir: dir})
	if err != nil || !cached || again != p {
		t.Errorf("second BuildBase = %s, cached %v, %v; want %s from the cache", again, cached, err, p)
	}
	if found, err := nodeimage.BaseTarball(dir); err != nil || found != p {
		t.Errorf("BaseTarball = %s, %v; want %s", found, err, p)
	}
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(string(p))
	return len(p), nil
}
