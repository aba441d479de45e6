package nodeimage

import (
	"testing"

	"github.com/labctl/lab/provision/artifacts"
)

// TestDefaultCacheDirIsTheLayouts: the node image's default cache is the
// one artifacts.Layout names, so that the build artifact source, bundles
// and lab image build agree on where the Debian root file system is. (The
// package cannot ask artifacts for it: artifacts' docker tests build the
// node image.)
func TestDefaultCacheDirIsTheLayouts(t *testing.T) {
	lay, err := artifacts.NewLayout("")
	if err != nil {
		t.Skip(err)
	}
	got, err := resolveCacheDir("")
	if err != nil {
		t.Fatal(err)
	}
	if want := lay.NodeImageDir(); got != want {
		t.Errorf("default cache directory %s, artifacts.Layout says %s", got, want)
	}
}
