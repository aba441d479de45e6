package artifacts

import (
	"context"
	"strings"
	"testing"

	"github.com/labctl/lab/provision/labfile"
)

// TestGatherForFindsTheLabsSet: a lab's kubernetes section finds the Set
// of its version and source in the cache, without calling Userland.
func TestGatherForFindsTheLabsSet(t *testing.T) {
	lay := Layout{Root: t.TempDir()}
	want := testSet(t, lay.ArtifactsDir(), SourceBuild)
	testSet(t, lay.ArtifactsDir(), SourceRelease)
	k := &labfile.Kubernetes{Version: testVersion, Artifacts: labfile.ArtifactsBuild}
	o := GatherOptions{Userland: func() (string, error) {
		t.Error("Userland called for a Set in the cache")
		return "", nil
	}}
	got, found, err := lay.Cache().GatherFor(context.Background(), k, "amd64", o)
	if err != nil {
		t.Fatal(err)
	}
	if !found || got.Key != want.Key {
		t.Errorf("GatherFor = set %s (found %v), want %s from the cache", got.Key, found, want.Key)
	}
}

// TestGatherForBuildNeedsUserland: with nothing in the cache, the build
// source needs a Debian root file system and says so.
func TestGatherForBuildNeedsUserland(t *testing.T) {
	lay := Layout{Root: t.TempDir()}
	k := &labfile.Kubernetes{Version: testVersion, Artifacts: labfile.ArtifactsBuild}
	_, _, err := lay.Cache().GatherFor(context.Background(), k, "amd64", GatherOptions{})
	if err == nil || !strings.Contains(err.Error(), "Debian root file system") {
		t.Errorf("error %v, want one naming the missing Debian root file system", err)
	}
}
