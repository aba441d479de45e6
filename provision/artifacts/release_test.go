package artifacts

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/labctl/lab/internal/tooltest"
	"github.com/labctl/lab/provision/artifacts/artifactstest"
)

// The release source is tested against a real HTTP download site and a
// real registry (go-containerregistry's, which speaks the distribution
// protocol), both on loopback and laid out as dl.k8s.io, the
// containernetworking releases and registry.k8s.io are. The image list
// comes from the real kubeadm binary .ci/build-kubeadm.sh builds.

const testVersion = "v1.34.12"

// testKubeadm finds the real kubeadm of testVersion for this machine.
func testKubeadm(t *testing.T) string {
	t.Helper()
	bin := tooltest.Find(t, "kubeadm", "LAB_KUBEADM", "run .ci/build-kubeadm.sh")
	out, err := exec.Command(bin, "version", "-o", "short").Output()
	if v := strings.TrimSpace(string(out)); err != nil || v != testVersion {
		tooltest.Missing(t, fmt.Sprintf("%s is kubeadm %q (%v), the tests need %s (run .ci/build-kubeadm.sh)", bin, v, err, testVersion))
	}
	return bin
}

// mirror is a release on loopback, and what was pushed to it.
type mirror struct {
	*artifactstest.Mirror
	pushed map[string]string // ref → manifest digest for the nodes' platform
}

func newMirror(t *testing.T) *mirror {
	return &mirror{Mirror: artifactstest.New(t), pushed: map[string]string{}}
}

// publishRelease serves kubeadm (the real one for this machine), kubelet,
// kubectl and the CNI plugins for arch.
func (m *mirror) publishRelease(t *testing.T, kubeadm, arch string) {
	bin, err := os.ReadFile(kubeadm)
	if err != nil {
		t.Fatal(err)
	}
	base := "/release/" + testVersion + "/bin/linux/" + arch + "/"
	m.Publish(base+"kubeadm", bin, false)
	m.Publish(base+"kubelet", []byte("kubelet for "+arch+"\n"), false)
	m.Publish(base+"kubectl", []byte("kubectl for "+arch+"\n"), false)
	var tgz bytes.Buffer
	zw := gzip.NewWriter(&tgz)
	tw := tar.NewWriter(zw)
	for _, f := range []struct{ name, body string }{{"./bridge", "bridge"}, {"./loopback", "loopback for " + arch}} {
		tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o755, Size: int64(len(f.body)), Typeflag: tar.TypeReg})
		tw.Write([]byte(f.body))
	}
	tw.Close()
	zw.Close()
	m.Publish(fmt.Sprintf("/cni/%s/cni-plugins-linux-%s-%s.tgz", CNIPluginsVersion, arch, CNIPluginsVersion), tgz.Bytes(), true)
}

// randomImage is a small image whose configuration says arch.
func randomImage(t *testing.T, arch string) v1.Image {
	img, err := random.Image(512, 2)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// pushImages pushes an image for every ref kubeadm lists; the first as a
// multi-platform index (amd64 and arm64), as registry.k8s.io serves them.
func (m *mirror) pushImages(t *testing.T, kubeadm, arch string) []string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	refs, err := listImages(ctx, kubeadm, testVersion, m.Repo)
	if err != nil {
		t.Fatal(err)
	}
	for i, ref := range refs {
		tag, err := name.NewTag(ref)
		if err != nil {
			t.Fatal(err)
		}
		img := randomImage(t, arch)
		if i == 0 {
			other := randomImage(t, "arm64")
			if arch == "arm64" {
				other = randomImage(t, "amd64")
			}
			otherCfg, _ := other.ConfigFile()
			idx := mutate.AppendManifests(empty.Index,
				mutate.IndexAddendum{Add: other, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: otherCfg.Architecture}}},
				mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}},
			)
			if err := remote.WriteIndex(tag, idx, remote.WithContext(ctx)); err != nil {
				t.Fatal(err)
			}
		} else if err := remote.Write(tag, img, remote.WithContext(ctx)); err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		m.pushed[ref] = d.String()
	}
	return refs
}

func (m *mirror) options(arch string) ReleaseOptions {
	return ReleaseOptions{
		Version:         testVersion,
		Arch:            arch,
		ImageRepository: m.Repo,
		ReleaseURL:      m.Site.URL + "/release",
		CNIPluginsURL:   m.Site.URL + "/cni",
		Log:             testWriter{t: nil},
	}
}

func TestReleaseGathersOnceAndVerifies(t *testing.T) {
	kubeadm := testKubeadm(t)
	arch := runtime.GOARCH
	m := newMirror(t)
	m.publishRelease(t, kubeadm, arch)
	refs := m.pushImages(t, kubeadm, arch)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cache := Cache{Root: t.TempDir()}
	o := m.options(arch)
	o.Log = testWriter{t}
	s, cached, err := cache.Release(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if cached || s.Source != SourceRelease || s.Arch != arch {
		t.Errorf("first Release: cached=%v source=%s arch=%s", cached, s.Source, s.Arch)
	}
	// Every program is the published one, and goes where nodes want it.
	want := map[string][]byte{
		"kubeadm":  m.File("/release/" + testVersion + "/bin/linux/" + arch + "/kubeadm"),
		"kubelet":  []byte("kubelet for " + arch + "\n"),
		"kubectl":  []byte("kubectl for " + arch + "\n"),
		"loopback": []byte("loopback for " + arch),
	}
	if len(s.Binaries) != len(want) {
		t.Errorf("binaries: %+v", s.Binaries)
	}
	for _, b := range s.Binaries {
		got, err := os.ReadFile(s.Path(b.Digest))
		if err != nil || !bytes.Equal(got, want[b.Name]) {
			t.Errorf("%s: the cached file is not the published one (%v)", b.Name, err)
		}
		if b.Path != nodeBinaries[b.Name] {
			t.Errorf("%s goes to %s, want %s", b.Name, b.Path, nodeBinaries[b.Name])
		}
	}
	// Every image kubeadm lists, for the nodes' platform, in a tarball
	// whose image ID is the one recorded.
	if len(s.Images) != len(refs) {
		t.Fatalf("%d images, kubeadm lists %d", len(s.Images), len(refs))
	}
	for i, im := range s.Images {
		if im.Ref != refs[i] {
			t.Errorf("image %d is %s, want %s", i, im.Ref, refs[i])
		}
		if !strings.HasSuffix(im.Pulled, "@"+m.pushed[im.Ref]) {
			t.Errorf("%s: pulled %s, the registry has %s for %s", im.Ref, im.Pulled, m.pushed[im.Ref], arch)
		}
		if im.ControlPlane != controlPlaneImage(im.Ref) {
			t.Errorf("%s: controlPlane=%v", im.Ref, im.ControlPlane)
		}
		tag, _ := name.NewTag(im.Ref)
		img, err := tarball.ImageFromPath(s.Path(im.Digest), &tag)
		if err != nil {
			t.Fatalf("%s: the tarball does not hold the image: %v", im.Ref, err)
		}
		id, _ := img.ConfigName()
		if id.String() != im.ID {
			t.Errorf("%s: tarball image ID %s, recorded %s", im.Ref, id, im.ID)
		}
	}

	// A second Release finds the Set without a single request.
	before := m.Requests()
	s2, cached, err := cache.Release(ctx, o)
	if err != nil || !cached || s2.Key != s.Key {
		t.Errorf("second Release: cached=%v key %s vs %s, err %v", cached, s2.Key, s.Key, err)
	}
	if n := m.Requests() - before; n != 0 {
		t.Errorf("second Release made %d requests", n)
	}
	// So does a lookup by what the lab asks for.
	found, err := cache.Find(Query{Version: testVersion, Arch: arch, Source: SourceRelease, ImageRepository: m.Repo})
	if err != nil || found.Key != s.Key {
		t.Errorf("Find: %v, %v", found, err)
	}
}

// TestReleaseForAnotherArchitecture gathers for nodes of the other
// architecture: their programs, images for their platform out of a
// multi-platform index, and the image list from this machine's kubeadm
// (theirs cannot run here).
func TestReleaseForAnotherArchitecture(t *testing.T) {
	kubeadm := testKubeadm(t)
	host, other := runtime.GOARCH, "arm64"
	if host == "arm64" {
		other = "amd64"
	}
	m := newMirror(t)
	m.publishRelease(t, kubeadm, host)
	m.publishRelease(t, kubeadm, other)
	m.Publish("/release/"+testVersion+"/bin/linux/"+other+"/kubeadm", []byte("kubeadm for "+other), false)
	m.pushImages(t, kubeadm, other)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	o := m.options(other)
	o.Log = testWriter{t}
	s, _, err := Cache{Root: t.TempDir()}.Release(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"kubeadm": "kubeadm for " + other, "loopback": "loopback for " + other} {
		got, err := os.ReadFile(s.Path(s.Binary(name).Digest))
		if err != nil || string(got) != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	for _, im := range s.Images {
		tag, _ := name.NewTag(im.Ref)
		img, err := tarball.ImageFromPath(s.Path(im.Digest), &tag)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil || cf.Architecture != other {
			t.Errorf("%s: image for %v, want %s (%v)", im.Ref, cf.Architecture, other, err)
		}
		if !strings.HasSuffix(im.Pulled, "@"+m.pushed[im.Ref]) {
			t.Errorf("%s: pulled %s, want %s", im.Ref, im.Pulled, m.pushed[im.Ref])
		}
	}
}

func TestReleaseRefusesWhatDoesNotMatch(t *testing.T) {
	kubeadm := testKubeadm(t)
	arch := runtime.GOARCH
	other := "arm64"
	if arch == "arm64" {
		other = "amd64"
	}
	for _, tc := range []struct {
		name   string
		break_ func(t *testing.T, m *mirror, refs []string)
		want   []string
	}{
		{"kubelet checksum", func(_ *testing.T, m *mirror, _ []string) {
			m.Set("/release/"+testVersion+"/bin/linux/"+arch+"/kubelet", []byte("tampered"))
		}, []string{"kubelet", "checksum mismatch"}},
		{"cni checksum", func(_ *testing.T, m *mirror, _ []string) {
			p := fmt.Sprintf("/cni/%s/cni-plugins-linux-%s-%s.tgz", CNIPluginsVersion, arch, CNIPluginsVersion)
			m.Set(p, append(m.File(p), 0))
		}, []string{"cni-plugins", "checksum mismatch"}},
		{"no checksum file", func(_ *testing.T, m *mirror, _ []string) {
			m.Set("/release/"+testVersion+"/bin/linux/"+arch+"/kubectl.sha256", nil)
		}, []string{"kubectl.sha256", "404"}},
		{"image for another architecture", func(t *testing.T, m *mirror, refs []string) {
			tag, _ := name.NewTag(refs[len(refs)-1])
			if err := remote.Write(tag, randomImage(t, other)); err != nil {
				t.Fatal(err)
			}
		}, []string{"image " + m0, "not linux/" + arch}},
		{"missing image", func(*testing.T, *mirror, []string) {
			// The lab names a repository the registry never saw.
		}, []string{"missing/", "NAME_UNKNOWN"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMirror(t)
			m.publishRelease(t, kubeadm, arch)
			var refs []string
			if tc.name != "missing image" {
				refs = m.pushImages(t, kubeadm, arch)
			}
			tc.break_(t, m, refs)
			cache := Cache{Root: t.TempDir()}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			o := m.options(arch)
			if tc.name == "missing image" {
				o.ImageRepository = m.Repo + "/missing"
			}
			o.Log = testWriter{t}
			_, _, err := cache.Release(ctx, o)
			if err == nil {
				t.Fatal("Release succeeded")
			}
			t.Logf("error: %v", err)
			for _, w := range tc.want {
				if w == "image "+m0 {
					w = "image " + refs[len(refs)-1]
				}
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			// Nothing half-gathered is left to be found.
			sets, _ := filepath.Glob(filepath.Join(cache.Root, testVersion, "*.json"))
			work, _ := filepath.Glob(filepath.Join(cache.Root, testVersion, "work-*"))
			if len(sets) > 0 || len(work) > 0 {
				t.Errorf("left behind: %v %v", sets, work)
			}
		})
	}
}

// m0 stands for the last image kubeadm lists, known once it has run.
const m0 = "<last image>"

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	if w.t != nil {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}
