//go:build e2e

package cluster

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/labctl/lab/internal/e2etest"
	"github.com/labctl/lab/provision"
	"github.com/labctl/lab/provision/artifacts"
	"github.com/labctl/lab/provision/artifacts/artifactstest"
	"github.com/labctl/lab/provision/provider/docker/dockertest"
	"github.com/labctl/lab/provision/workflow"
)

// TestReleaseArtifactsAndBundle is the release source end to end. This
// machine reaches neither dl.k8s.io nor registry.k8s.io, so a mirror on
// loopback serves the programs and images of the build source laid out as
// those sites do: programs with a .sha256 beside them, the CNI plugins
// archive, and a registry speaking the distribution protocol. lab up of a
// one-node lab with kubernetes.artifacts: release gathers everything
// through go-getter and go-containerregistry into an empty cache, pushes it
// to the node, and the node comes up Ready running the pulled images.
// Then the Set travels in a bundle to another empty cache, the mirror
// closes, and lab up from that cache finds everything and does nothing.
func TestReleaseArtifactsAndBundle(t *testing.T) {
	ctx := e2etest.Context(t, 15*time.Minute)
	restoreSysctls(t)
	cli := dockertest.Docker(t)
	image := dockertest.NodeImage(t, cli)

	built := buildSet(t, ctx)
	m := artifactstest.New(t)
	start := time.Now()
	publishRelease(t, ctx, m, built)
	t.Logf("TIMING mirror filled: %v", time.Since(start).Round(time.Millisecond))

	l := newLabFrom(t, cli, func(name string, octet int) string {
		return releaseLabYAML(name, image, octet, m)
	})
	cache1 := t.TempDir()
	opts := provision.Options{StateRoot: l.stateRoot, Provider: l.prov, CacheDir: cache1}
	ev := &e2etest.Events{}
	opts.Report = ev
	start = time.Now()
	if err := provision.Up(ctx, l.lab, opts); err != nil {
		t.Fatalf("lab up: %v\n%s", err, ev.Failures())
	}
	t.Logf("TIMING lab up from the release source (gathering included): %v", time.Since(start).Round(time.Millisecond))
	for _, p := range phaseTimes(ev.All()) {
		t.Logf("TIMING   phase %s", p)
	}

	// The cache holds a release Set: the mirror's programs, the images
	// pulled by digest, with the build's image IDs (the same configs).
	set, err := artifacts.Layout{Root: cache1}.Cache().Find(artifacts.Query{
		Version: version, Arch: runtime.GOARCH, Source: artifacts.SourceRelease, ImageRepository: m.Repo,
	})
	if err != nil {
		t.Fatalf("no release Set after lab up: %v", err)
	}
	for _, b := range set.Binaries {
		if want := built.Binary(b.Name); want == nil || want.Digest != b.Digest {
			t.Errorf("%s: release Set has %s, the mirror served %v", b.Name, b.Digest, want)
		}
	}
	ids := map[string]string{}
	for _, im := range built.Images {
		ids[path.Base(im.Ref)] = im.ID
	}
	for _, im := range set.Images {
		if !strings.HasPrefix(im.Pulled, m.Repo+"/") || !strings.Contains(im.Pulled, "@sha256:") {
			t.Errorf("%s: pulled %q, want a digest reference in %s", im.Ref, im.Pulled, m.Repo)
		}
		if ids[strings.TrimPrefix(im.Ref, m.Repo+"/")] != im.ID {
			t.Errorf("%s: image ID %s differs from the build's", im.Ref, im.ID)
		}
	}

	kubectl := kubectlOf(t, set)
	kubeconfig := filepath.Join(l.stateRoot, l.name(), "admin.conf")
	if ready := nodesReady(t, ctx, kubectl, kubeconfig); len(ready) != 1 {
		t.Errorf("Ready nodes %v, want cp1", ready)
	}
	l.checkImages(t, ctx, set)

	// The bundle: written, read into an empty cache, and the mirror gone.
	bundle := filepath.Join(t.TempDir(), "lab.tar.gz")
	f, err := os.Create(bundle)
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if _, err := artifacts.WriteBundle(f, l.name(), []*artifacts.Set{set}, nil, nil, true); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(bundle)
	t.Logf("TIMING bundle create (gzip): %v, %d MiB", time.Since(start).Round(time.Millisecond), fi.Size()>>20)
	cache2 := t.TempDir()
	f, err = os.Open(bundle)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	start = time.Now()
	if _, err := artifacts.ReadBundle(f, artifacts.Layout{Root: cache2}); err != nil {
		t.Fatal(err)
	}
	t.Logf("TIMING bundle import: %v", time.Since(start).Round(time.Millisecond))
	m.Site.Close()
	m.Registry.Close()
	requests := m.Requests()

	opts.CacheDir = cache2
	again := &e2etest.Events{}
	opts.Report = again
	if err := provision.Up(ctx, l.lab, opts); err != nil {
		t.Fatalf("lab up from the imported bundle: %v\n%s", err, again.Failures())
	}
	if did := didWork(again.All()); len(did) > 0 {
		t.Errorf("lab up from the imported bundle did work: %v", did)
	}
	if !foundInCache(again.All()) {
		t.Errorf("lab up from the imported bundle did not report the Set found in the cache")
	}
	if n := m.Requests() - requests; n != 0 {
		t.Errorf("lab up from the bundle asked the mirror %d times", n)
	}

	opts.Report = &e2etest.Events{}
	if err := provision.Down(ctx, l.lab, opts); err != nil {
		t.Fatalf("lab down: %v", err)
	}
}

// foundInCache reports whether the kubernetes phase said it found its Set.
func foundInCache(evs []workflow.Event) bool {
	for _, ev := range evs {
		if ev.Phase == "kubernetes" && strings.Contains(ev.Message, "found in the cache") {
			return true
		}
	}
	return false
}

// publishRelease serves set's programs and the CNI plugins archive as
// dl.k8s.io and the containernetworking releases do, and pushes its images
// to the mirror's registry under the names kubeadm gives them there.
func publishRelease(t *testing.T, ctx context.Context, m *artifactstest.Mirror, set *artifacts.Set) {
	t.Helper()
	read := func(name string) []byte {
		b := set.Binary(name)
		data, err := os.ReadFile(set.Path(b.Digest))
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	for _, p := range []string{"kubeadm", "kubelet", "kubectl"} {
		m.Publish(fmt.Sprintf("/release/%s/bin/linux/%s/%s", version, set.Arch, p), read(p), false)
	}
	var tgz bytes.Buffer
	zw := gzip.NewWriter(&tgz)
	tw := tar.NewWriter(zw)
	loopback := read("loopback")
	tw.WriteHeader(&tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "./loopback", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(loopback))})
	tw.Write(loopback)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	zw.Close()
	cni := artifacts.CNIPluginsVersion
	m.Publish(fmt.Sprintf("/cni/%s/cni-plugins-linux-%s-%s.tgz", cni, set.Arch, cni), tgz.Bytes(), true)

	for _, im := range set.Images {
		src, err := name.NewTag(im.Ref)
		if err != nil {
			t.Fatal(err)
		}
		img, err := tarball.ImageFromPath(set.Path(im.Digest), &src)
		if err != nil {
			t.Fatalf("%s: %v", im.Ref, err)
		}
		dst, err := name.NewTag(m.Repo + "/" + path.Base(im.Ref))
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(dst, img, remote.WithContext(ctx)); err != nil {
			t.Fatalf("push %s: %v", dst, err)
		}
	}
}

func releaseLabYAML(name, image string, octet int, m *artifactstest.Mirror) string {
	return fmt.Sprintf(`apiVersion: lab/v1alpha1
kind: Lab
metadata:
  name: %[1]s
provider:
  type: docker
  docker:
    image: %[2]s
networks:
  - name: lab
    cidr: 10.251.%[3]d.0/24
kubernetes:
  version: %[4]s
  artifacts: release
  imageRepository: %[5]s
  release:
    url: %[6]s/release
    cniPluginsURL: %[6]s/cni
controlPlane:
  mode: vip
  vip: 10.251.%[3]d.10
cni:
  type: builtin
nodes:
  - name: cp1
    roles: [control-plane]
    addresses: {lab: 10.251.%[3]d.11}
`, name, image, octet, version, m.Repo, m.Site.URL)
}
