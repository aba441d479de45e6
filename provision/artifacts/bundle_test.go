package artifacts

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testSet stores a small Set of source in the cache rooted at root: two
// programs and an image, all with distinct content.
func testSet(t *testing.T, root, source string) *Set {
	t.Helper()
	c := Cache{Root: root}
	dir := c.versionDir(testVersion)
	inputs := map[string]string{"recipe": recipes[source], "source": source, "imageRepository": DefaultImageRepository, "arch": "amd64",
		"cniPlugins": CNIPluginsVersion, "pause": digestOf(pauseSource)}
	s := &Set{Version: testVersion, Arch: "amd64", Source: source, Key: inputKey(inputs), Inputs: inputs, dir: dir}
	put := func(content string) (string, int64) {
		f := filepath.Join(t.TempDir(), "blob")
		if err := os.WriteFile(f, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		d, n, err := putBlob(dir, f)
		if err != nil {
			t.Fatal(err)
		}
		return d, n
	}
	for _, name := range []string{"kubeadm", "kubelet"} {
		d, n := put(source + " " + name)
		s.Binaries = append(s.Binaries, Binary{Name: name, Path: nodeBinaries[name], Digest: d, Size: n})
	}
	d, n := put(source + " pause image")
	s.Images = append(s.Images, Image{Ref: "registry.k8s.io/pause:3.10.1", Digest: d, Size: n, ID: "sha256:" + strings.Repeat("ab", 32)})
	if err := c.store(s); err != nil {
		t.Fatal(err)
	}
	return s
}

func writeTestBundle(t *testing.T, compress bool) ([]byte, []*Set, string) {
	t.Helper()
	root := Layout{Root: t.TempDir()}.ArtifactsDir()
	sets := []*Set{testSet(t, root, SourceBuild), testSet(t, root, SourceRelease)}
	extra := filepath.Join(t.TempDir(), "base-0123abcd.tar")
	if err := os.WriteFile(extra, []byte("debian root file system"), 0o644); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	m, err := WriteBundle(&buf, "lab1", sets, nil, []Extra{NodeImageExtra(extra)}, compress)
	if err != nil {
		t.Fatal(err)
	}
	// 3 distinct blobs per Set, the extra file, 2 Sets.
	if len(m.Files) != 9 || len(m.Sets) != 2 {
		t.Fatalf("manifest lists %d files, %d sets: %+v", len(m.Files), len(m.Sets), m)
	}
	return buf.Bytes(), sets, extra
}

func TestBundleRoundTrip(t *testing.T) {
	for _, compress := range []bool{false, true} {
		data, sets, _ := writeTestBundle(t, compress)
		again, _, _ := writeTestBundle(t, compress)
		if !bytes.Equal(data, again) {
			t.Errorf("compress=%v: the same Sets made two different bundles", compress)
		}
		dir := t.TempDir()
		m, err := ReadBundle(bytes.NewReader(data), Layout{Root: dir})
		if err != nil {
			t.Fatalf("compress=%v: %v", compress, err)
		}
		if m.Lab != "lab1" {
			t.Errorf("lab %q", m.Lab)
		}
		c := Layout{Root: dir}.Cache()
		for _, want := range sets {
			got, err := c.Find(Query{Version: want.Version, Arch: want.Arch, Source: want.Source})
			if err != nil {
				t.Fatalf("compress=%v: the imported %s Set is not found: %v", compress, want.Source, err)
			}
			if got.Key != want.Key || len(got.Binaries) != len(want.Binaries) {
				t.Errorf("imported Set %+v, want %+v", got, want)
			}
			for _, b := range want.Binaries {
				a, _ := os.ReadFile(want.Path(b.Digest))
				i, _ := os.ReadFile(got.Path(b.Digest))
				if !bytes.Equal(a, i) {
					t.Errorf("%s differs after import", b.Name)
				}
			}
		}
		if b, err := os.ReadFile(filepath.Join(Layout{Root: dir}.NodeImageDir(), "base-0123abcd.tar")); err != nil || string(b) != "debian root file system" {
			t.Errorf("extra file: %q %v", b, err)
		}
		// A second import changes nothing and still succeeds; in
		// particular it leaves the Sets' times, by which Find picks the
		// newest, alone.
		setFiles, _ := filepath.Glob(filepath.Join(Layout{Root: dir}.ArtifactsDir(), "*", "*.json"))
		old := time.Now().Add(-time.Hour).Truncate(time.Second)
		for _, f := range setFiles {
			os.Chtimes(f, old, old)
		}
		if _, err := ReadBundle(bytes.NewReader(data), Layout{Root: dir}); err != nil {
			t.Errorf("second import: %v", err)
		}
		for _, f := range setFiles {
			if fi, err := os.Stat(f); err != nil || !fi.ModTime().Equal(old) {
				t.Errorf("second import rewrote %s", f)
			}
		}
		assertNoTemporaries(t, dir)
	}
}

// members lists a plain bundle's members and their content.
func members(t *testing.T, data []byte) (names []string, bodies [][]byte) {
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		names, bodies = append(names, h.Name), append(bodies, b)
	}
}

// rewrite makes a bundle of the given members, in order.
func rewrite(t *testing.T, names []string, bodies [][]byte) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i, n := range names {
		tw.WriteHeader(&tar.Header{Name: n, Size: int64(len(bodies[i])), Mode: 0o644, Typeflag: tar.TypeReg})
		tw.Write(bodies[i])
	}
	tw.Close()
	return buf.Bytes()
}

func TestBundleRefusesDamage(t *testing.T) {
	data, _, _ := writeTestBundle(t, false)
	names, bodies := members(t, data)
	if names[0] != bundleManifestName || !strings.HasSuffix(names[len(names)-1], ".json") {
		t.Fatalf("member order %v: the manifest first, Sets last", names)
	}
	var m BundleManifest
	if err := json.Unmarshal(bodies[0], &m); err != nil {
		t.Fatal(err)
	}
	flip := func(i int) [][]byte {
		out := append([][]byte(nil), bodies...)
		b := append([]byte(nil), out[i]...)
		b[0] ^= 0xff
		out[i] = b
		return out
	}
	manifestWith := func(files []BundleFile) [][]byte {
		mm := m
		mm.Files = files
		b, _ := json.Marshal(mm)
		out := append([][]byte(nil), bodies...)
		out[0] = b
		return out
	}
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"corrupt blob", rewrite(t, names, flip(1)), "corrupt (digest"},
		{"truncated", data[:len(data)/2], "bundle:"},
		{"member missing", rewrite(t, names[:len(names)-2], bodies[:len(bodies)-2]), "not in the archive"},
		{"not a bundle", rewrite(t, names[1:], bodies[1:]), "not a lab bundle"},
		{"escape", rewrite(t, names, manifestWith(append([]BundleFile{{Path: "../../etc/cron.d/x", Digest: "sha256:00", Size: 1}}, m.Files...))), "not a path a bundle may hold"},
		{"member not listed", rewrite(t, names, manifestWith(m.Files[1:])), "not in the manifest"},
		{"Set installs elsewhere", rewrite(t, names, evilSet(t, m, bodies, len(names)-1)), "lab installs only"},
		{"blob named for another digest", rewrite(t, names, func() [][]byte {
			files := append([]BundleFile(nil), m.Files...)
			files[0].Digest, files[1].Digest = files[1].Digest, files[0].Digest
			return manifestWith(files)
		}()), "names blob"},
		{"other format", rewrite(t, names, func() [][]byte {
			out := append([][]byte(nil), bodies...)
			out[0] = bytes.Replace(out[0], []byte(BundleFormat), []byte("lab.bundle/v9"), 1)
			return out
		}()), `format "lab.bundle/v9"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			_, err := ReadBundle(bytes.NewReader(tc.data), Layout{Root: dir})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
			t.Logf("error: %v", err)
			// No Set is readable after a failed import, and no temporary
			// file is left behind.
			if sets, _ := filepath.Glob(filepath.Join(Layout{Root: dir}.ArtifactsDir(), "*", "*.json")); len(sets) > 0 {
				t.Errorf("a failed import left Sets: %v", sets)
			}
			assertNoTemporaries(t, dir)
		})
	}
}

func assertNoTemporaries(t *testing.T, dir string) {
	t.Helper()
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && (strings.HasPrefix(fi.Name(), ".import-") || strings.HasSuffix(fi.Name(), ".tmp")) {
			t.Errorf("left behind: %s", p)
		}
		return nil
	})
}

// evilSet is the bundle's member i (a Set) changed to install kubeadm over
// root's authorized_keys, with the manifest's digest and size made to
// match: a bundle is consistent with itself whoever made it.
func evilSet(t *testing.T, m BundleManifest, bodies [][]byte, i int) [][]byte {
	t.Helper()
	var set Set
	if err := json.Unmarshal(bodies[i], &set); err != nil {
		t.Fatal(err)
	}
	set.Binaries[0].Path = "/root/.ssh/authorized_keys"
	body, _ := json.Marshal(set)
	files := append([]BundleFile(nil), m.Files...)
	files[i-1].Digest, files[i-1].Size = digestOf(body), int64(len(body))
	mm := m
	mm.Files = files
	manifest, _ := json.Marshal(mm)
	out := append([][]byte(nil), bodies...)
	out[0], out[i] = manifest, body
	return out
}

// TestLoadRefusesForeignSets: a Set in the cache (from a bundle, or edited
// by hand) that names other programs or paths, or whose key is not its
// inputs' hash, is refused when loaded.
func TestLoadRefusesForeignSets(t *testing.T) {
	root := t.TempDir()
	s := testSet(t, root, SourceBuild)
	c := Cache{Root: root}
	if _, err := c.Load(s.Version, s.Key); err != nil {
		t.Fatalf("a Set lab made: %v", err)
	}
	for _, tc := range []struct {
		name   string
		change func(*Set)
		want   string
	}{
		{"other path", func(s *Set) { s.Binaries[0].Path = "/etc/cron.d/x" }, "lab installs only"},
		{"other program", func(s *Set) { s.Binaries[0].Name = "sh" }, "lab installs only"},
		{"inputs changed", func(s *Set) { s.Inputs["source"] = "x" }, "not the hash of its inputs"},
		{"shell in a reference", func(s *Set) { s.Images[0].Ref = "pause;reboot" }, "not one kubeadm would print"},
		{"bad digest", func(s *Set) { s.Binaries[1].Digest = "sha256:../../x" }, "not sha256:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := *s
			bad.Binaries = append([]Binary(nil), s.Binaries...)
			bad.Images = append([]Image(nil), s.Images...)
			bad.Inputs = maps.Clone(s.Inputs)
			tc.change(&bad)
			if err := c.store(&bad); err != nil {
				t.Fatal(err)
			}
			defer c.store(s)
			_, err := c.Load(s.Version, s.Key)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
}

// TestLoadRemembersVerifiedBlobs: Load records the blobs it hashed, and a
// blob written since — in place with the same size, or replaced — is
// hashed again and found corrupt.
func TestLoadRemembersVerifiedBlobs(t *testing.T) {
	root := t.TempDir()
	s := testSet(t, root, SourceBuild)
	c := Cache{Root: root}
	if _, err := c.Load(s.Version, s.Key); err != nil {
		t.Fatal(err)
	}
	v := loadVerified(c.versionDir(s.Version))
	if n := len(s.Binaries) + len(s.Images); len(v.seen) != n {
		t.Fatalf("record holds %d blobs, want %d", len(v.seen), n)
	}
	if _, err := c.Load(s.Version, s.Key); err != nil {
		t.Fatalf("second load: %v", err)
	}

	blob := s.Path(s.Binaries[0].Digest)
	good, err := os.ReadFile(blob)
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.ToUpper(good)
	if bytes.Equal(bad, good) {
		t.Fatal("test blob has no letters to change")
	}
	// In place, same size.
	f, err := os.OpenFile(blob, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(bad)
	f.Close()
	if _, err := c.Load(s.Version, s.Key); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("after an in-place write: %v, want corrupt", err)
	}
	// Put back, load (recorded again), then replace by rename.
	if err := os.WriteFile(blob, good, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Load(s.Version, s.Key); err != nil {
		t.Fatalf("after putting it back: %v", err)
	}
	tmp := blob + ".new"
	if err := os.WriteFile(tmp, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, blob); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Load(s.Version, s.Key); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("after a replace: %v, want corrupt", err)
	}
}

// TestBundleCarriesCiliumSets takes a built Cilium set through a bundle:
// the offline site finds it as lab up looks for it, with every blob, and
// a set whose images were swapped on the way is refused with nothing
// written.
func TestBundleCarriesCiliumSets(t *testing.T) {
	src := Layout{Root: t.TempDir()}.Cache()
	cs := fakeCiliumSet(t, src, "1.18.1", "amd64")
	var buf bytes.Buffer
	m, err := WriteBundle(&buf, "lab1", nil, []*CiliumSet{cs}, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	// The chart and three images, then the set.
	if len(m.Files) != 5 || len(m.CiliumSets) != 1 || m.CiliumSets[0].Key != cs.Key {
		t.Fatalf("manifest: %+v", m)
	}
	dir := t.TempDir()
	if _, err := ReadBundle(bytes.NewReader(buf.Bytes()), Layout{Root: dir}); err != nil {
		t.Fatal(err)
	}
	got, found, err := Layout{Root: dir}.Cache().GatherCilium(context.Background(), CiliumGatherOptions{
		Version: "1.18.1", Arch: "amd64", Source: SourceBuild,
		Userland: func() (string, error) { return "", errors.New("the offline site must not build") },
	})
	if err != nil || !found || got.Key != cs.Key {
		t.Fatalf("GatherCilium after the import: %v found %v, %v", got, found, err)
	}
	for _, im := range cs.Images {
		a, _ := os.ReadFile(cs.Path(im.Digest))
		b, err := os.ReadFile(got.Path(im.Digest))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("image %s differs after the import: %v", im.Ref, err)
		}
	}

	// Swap the agent image for the operator's in the set's file, with the
	// manifest's digest made to match: the set's own check refuses it.
	names, bodies := members(t, buf.Bytes())
	var mf BundleManifest
	if err := json.Unmarshal(bodies[0], &mf); err != nil {
		t.Fatal(err)
	}
	last := len(names) - 1
	var set map[string]any
	if err := json.Unmarshal(bodies[last], &set); err != nil {
		t.Fatal(err)
	}
	images := set["images"].([]any)
	images[0].(map[string]any)["ref"] = "quay.io/cilium/cilium:v1.18.1"
	bodies[last], _ = json.Marshal(set)
	mf.Files[last-1].Digest, mf.Files[last-1].Size = digestOf(bodies[last]), int64(len(bodies[last]))
	bodies[0], _ = json.Marshal(mf)
	empty := t.TempDir()
	if _, err := ReadBundle(bytes.NewReader(rewrite(t, names, bodies)), Layout{Root: empty}); err == nil || !strings.Contains(err.Error(), "quay.io/cilium/cilium") {
		t.Errorf("a set with a foreign image: %v", err)
	}
	if sets, _ := filepath.Glob(filepath.Join(empty, "artifacts", "cilium", "*", "*.json")); len(sets) > 0 {
		t.Errorf("a refused bundle left sets behind: %v", sets)
	}
}
