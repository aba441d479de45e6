package artifacts

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/labctl/lab/internal/atomicfile"
)

// A bundle carries a lab's artifacts to a machine that can neither
// download nor build them: one tar archive (gzip-compressed when asked)
// laid out as the lab cache directory is, so that reading it back is
// copying files into place.
//
//	bundle.json                                    the manifest, first
//	artifacts/<version>/blobs/sha256/<hex>         the Sets' blobs
//	artifacts/cilium/v<version>/blobs/sha256/<hex> the Cilium sets' blobs
//	nodeimage/base-<key>.tar                       extra files (the node image's root file system)
//	artifacts/<version>/<key>.json                 the Sets, last
//	artifacts/cilium/v<version>/<key>.json         and the Cilium sets
//
// Every file is listed in the manifest with its digest and size. Reading
// verifies each one as it streams past, writes it under a temporary name
// and renames it only once its digest matches; Sets are written after all
// their blobs, so an interrupted import leaves nothing that Find returns.

// BundleFormat names the layout above.
const BundleFormat = "lab.bundle/v1"

// bundleManifestName is the manifest's name in the archive.
const bundleManifestName = "bundle.json"

// BundleManifest describes a bundle's content.
type BundleManifest struct {
	Format string `json:"format"`
	// Lab is the name of the lab the bundle was made for.
	Lab  string      `json:"lab,omitempty"`
	Sets []BundleSet `json:"sets"`
	// CiliumSets are the Cilium sets (images, chart, helm) of a Cilium
	// lab; a lab that reads no Cilium sets refuses their files.
	CiliumSets []BundleSet `json:"ciliumSets,omitempty"`
	// Files are every file but the manifest, in archive order.
	Files []BundleFile `json:"files"`
}

// BundleSet names one Set in a bundle.
type BundleSet struct {
	Version string `json:"version"`
	Arch    string `json:"arch"`
	Source  string `json:"source"`
	Key     string `json:"key"`
}

// BundleFile is one file of a bundle, at its path under the cache
// directory.
type BundleFile struct {
	Path   string `json:"path"`
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
}

// Extra is a file from outside the artifact cache that travels in a
// bundle: Path is where it goes under the cache directory (see
// NodeImageExtra).
type Extra struct {
	Path string
	Src  string
}

// bundlePath is what a bundle may hold: the manifest's files are checked
// against it so that nothing is written outside the cache directory.
var bundlePath = regexp.MustCompile(`^(` + artifactsDir + `/(v1|cilium/v[0-9]+)\.[0-9]+\.[0-9]+/(blobs/sha256/[0-9a-f]{64}|[0-9a-f]{20}\.json)|` + nodeImageDir + `/base-[0-9a-f]+\.tar)$`)

// ciliumSetPath is where a Cilium set lies in a bundle.
var ciliumSetPath = regexp.MustCompile(`^` + artifactsDir + `/cilium/v([0-9]+\.[0-9]+\.[0-9]+)/([0-9a-f]{20})\.json$`)

// WriteBundle writes sets and cilium, with their blobs, and extras to w
// as a bundle for lab; gzip-compressed when compress is set. It returns
// the manifest.
func WriteBundle(w io.Writer, lab string, sets []*Set, cilium []*CiliumSet, extras []Extra, compress bool) (*BundleManifest, error) {
	m := &BundleManifest{Format: BundleFormat, Lab: lab}
	type entry struct {
		file BundleFile
		src  string
		data []byte
	}
	var blobs, tail []entry
	seen := map[string]bool{}
	// add lists one set's blobs (under dir/blobs, once each) and the set
	// itself (dir/<key>.json); local names a blob's file on this machine.
	add := func(dir, key string, set any, digests []string, local func(string) string) error {
		for _, d := range digests {
			p := path.Join(dir, "blobs", "sha256", strings.TrimPrefix(d, "sha256:"))
			if seen[p] {
				continue
			}
			seen[p] = true
			fi, err := os.Stat(local(d))
			if err != nil {
				return fmt.Errorf("bundle: %w", err)
			}
			blobs = append(blobs, entry{file: BundleFile{Path: p, Digest: d, Size: fi.Size()}, src: local(d)})
		}
		data, err := json.MarshalIndent(set, "", "  ")
		if err != nil {
			return err
		}
		data = append(data, '\n')
		tail = append(tail, entry{file: BundleFile{Path: path.Join(dir, key+".json"), Digest: digestOf(data), Size: int64(len(data))}, data: data})
		return nil
	}
	for _, s := range sets {
		m.Sets = append(m.Sets, BundleSet{Version: s.Version, Arch: s.Arch, Source: s.Source, Key: s.Key})
		var digests []string
		for _, b := range s.Binaries {
			digests = append(digests, b.Digest)
		}
		for _, im := range s.Images {
			digests = append(digests, im.Digest)
		}
		if err := add(path.Join(artifactsDir, s.Version), s.Key, s, digests, s.Path); err != nil {
			return nil, err
		}
	}
	for _, s := range cilium {
		m.CiliumSets = append(m.CiliumSets, BundleSet{Version: s.Version, Arch: s.Arch, Source: s.Source, Key: s.Key})
		digests := []string{s.Chart.Digest}
		if s.Helm.Digest != "" {
			digests = append(digests, s.Helm.Digest)
		}
		for _, im := range s.Images {
			digests = append(digests, im.Digest)
		}
		if err := add(path.Join(artifactsDir, "cilium", "v"+s.Version), s.Key, s, digests, s.Path); err != nil {
			return nil, err
		}
	}
	sort.Slice(blobs, func(i, j int) bool { return blobs[i].file.Path < blobs[j].file.Path })
	for _, x := range extras {
		d, n, err := fileDigest(x.Src)
		if err != nil {
			return nil, fmt.Errorf("bundle: %w", err)
		}
		blobs = append(blobs, entry{file: BundleFile{Path: x.Path, Digest: d, Size: n}, src: x.Src})
	}
	all := append(blobs, tail...)
	for _, e := range all {
		if !bundlePath.MatchString(e.file.Path) {
			return nil, fmt.Errorf("bundle: %s is not a path a bundle may hold", e.file.Path)
		}
		m.Files = append(m.Files, e.file)
	}
	manifest, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}

	bw := bufio.NewWriterSize(w, 1<<20)
	out := io.Writer(bw)
	var zw *gzip.Writer
	if compress {
		// Binaries and images compress to about half; the default level
		// costs several times the time of the fastest for a few percent.
		zw, _ = gzip.NewWriterLevel(bw, gzip.BestSpeed)
		out = zw
	}
	tw := tar.NewWriter(out)
	// A fixed time and owner: the same Sets make the same bundle.
	hdr := func(name string, size int64) *tar.Header {
		return &tar.Header{Name: name, Size: size, Mode: 0o644, Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
	}
	if err := tw.WriteHeader(hdr(bundleManifestName, int64(len(manifest)))); err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	if _, err := tw.Write(manifest); err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	for _, e := range all {
		if err := tw.WriteHeader(hdr(e.file.Path, e.file.Size)); err != nil {
			return nil, fmt.Errorf("bundle: %w", err)
		}
		if e.data != nil {
			_, err = tw.Write(e.data)
		} else {
			err = copyFile(tw, e.src, e.file.Size)
		}
		if err != nil {
			return nil, fmt.Errorf("bundle: %s: %w", e.file.Path, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			return nil, fmt.Errorf("bundle: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	return m, nil
}

// copyFile writes exactly size bytes of src to w: a file that changed
// size since it was listed would make a broken archive.
func copyFile(w io.Writer, src string, size int64) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := io.Copy(w, io.LimitReader(f, size))
	if err == nil && n != size {
		err = fmt.Errorf("%s changed while the bundle was written", src)
	}
	return err
}

// ReadBundle reads a bundle (plain or gzip-compressed tar) into the cache
// directory l and returns its manifest. Files already in place with the
// right content are left alone.
func ReadBundle(r io.Reader, l Layout) (*BundleManifest, error) {
	dir := l.Root
	br := bufio.NewReaderSize(r, 1<<20)
	in := io.Reader(br)
	if magic, err := br.Peek(2); err == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("bundle: %w", err)
		}
		defer zr.Close()
		in = zr
	}
	tr := tar.NewReader(in)
	h, err := tr.Next()
	if err != nil {
		return nil, fmt.Errorf("bundle: not a lab bundle (no %s first): %w", bundleManifestName, err)
	}
	if h.Name != bundleManifestName || h.Size > 16<<20 {
		return nil, fmt.Errorf("bundle: not a lab bundle: the first member is %s, not %s", h.Name, bundleManifestName)
	}
	var m BundleManifest
	if err := json.NewDecoder(tr).Decode(&m); err != nil {
		return nil, fmt.Errorf("bundle: %s: %w", bundleManifestName, err)
	}
	if m.Format != BundleFormat {
		return nil, fmt.Errorf("bundle: format %q; this lab reads %s", m.Format, BundleFormat)
	}
	want := map[string]BundleFile{}
	var need uint64
	for _, f := range m.Files {
		if !bundlePath.MatchString(f.Path) {
			return nil, fmt.Errorf("bundle: the manifest lists %s, which is not a path a bundle may hold", f.Path)
		}
		if !sha256Digest.MatchString(f.Digest) || f.Size < 0 {
			return nil, fmt.Errorf("bundle: the manifest gives %s digest %q and size %d", f.Path, f.Digest, f.Size)
		}
		// A blob's name is its digest: one that is not would overwrite
		// another blob with the wrong content.
		if path.Dir(f.Path) != "." && path.Base(path.Dir(f.Path)) == "sha256" && path.Base(f.Path) != strings.TrimPrefix(f.Digest, "sha256:") {
			return nil, fmt.Errorf("bundle: the manifest names blob %s with digest %s", f.Path, f.Digest)
		}
		if strings.HasSuffix(f.Path, ".json") && f.Size > maxSetSize {
			return nil, fmt.Errorf("bundle: Set %s is %d bytes; Sets are a few KiB", f.Path, f.Size)
		}
		if fi, err := os.Stat(filepath.Join(dir, filepath.FromSlash(f.Path))); err != nil || fi.Size() != f.Size {
			need += uint64(f.Size)
		}
		want[f.Path] = f
	}
	if err := checkRoom(dir, need); err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	done := map[string]bool{}
	var sets []pendingSet
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("bundle: %w (is the archive complete?)", err)
		}
		f, ok := want[h.Name]
		if !ok || h.Typeflag != tar.TypeReg || done[h.Name] {
			return nil, fmt.Errorf("bundle: member %s is not in the manifest", h.Name)
		}
		if h.Size != f.Size {
			return nil, fmt.Errorf("bundle: %s is %d bytes, the manifest says %d", h.Name, h.Size, f.Size)
		}
		if strings.HasSuffix(h.Name, ".json") {
			// Sets go in last, once every blob is in place.
			data, err := io.ReadAll(io.LimitReader(tr, f.Size))
			if err != nil {
				return nil, fmt.Errorf("bundle: %s: %w", h.Name, err)
			}
			if digestOf(data) != f.Digest {
				return nil, fmt.Errorf("bundle: %s is corrupt (digest %s, the manifest says %s)", h.Name, digestOf(data), f.Digest)
			}
			sets = append(sets, pendingSet{path: h.Name, data: data})
		} else if err := placeFile(tr, filepath.Join(dir, filepath.FromSlash(h.Name)), f); err != nil {
			return nil, fmt.Errorf("bundle: %s: %w", h.Name, err)
		}
		done[h.Name] = true
	}
	for _, f := range m.Files {
		if !done[f.Path] {
			return nil, fmt.Errorf("bundle: %s is in the manifest but not in the archive (is the archive complete?)", f.Path)
		}
	}
	// Every Set is checked as Load would before any is written: one
	// refused Set refuses the bundle.
	for _, s := range sets {
		if err := s.check(); err != nil {
			return nil, fmt.Errorf("bundle: %s: %w", s.path, err)
		}
	}
	for _, s := range sets {
		if err := placeSet(dir, s); err != nil {
			return nil, fmt.Errorf("bundle: %s: %w", s.path, err)
		}
	}
	return &m, nil
}

// check checks the Set as Load will, against the version and key its
// path names (artifacts/<version>/<key>.json, as bundlePath has it), or
// the Cilium set as LoadCilium will (artifacts/cilium/v<version>/<key>.json).
func (s pendingSet) check() error {
	if m := ciliumSetPath.FindStringSubmatch(s.path); m != nil {
		var set CiliumSet
		if err := json.Unmarshal(s.data, &set); err != nil {
			return err
		}
		return set.check(m[1], m[2])
	}
	var set Set
	if err := json.Unmarshal(s.data, &set); err != nil {
		return err
	}
	return set.check(path.Base(path.Dir(s.path)), strings.TrimSuffix(path.Base(s.path), ".json"))
}

// placeSet writes a checked Set into the cache, under the version
// directory's lock; a Set already there with the same content is left
// alone, so that importing a bundle again does not make its Sets the
// newest.
func placeSet(dir string, s pendingSet) error {
	dst := filepath.Join(dir, filepath.FromSlash(s.path))
	unlock, err := lock(filepath.Dir(dst))
	if err != nil {
		return err
	}
	defer unlock()
	return placeFile(bytes.NewReader(s.data), dst, BundleFile{Digest: digestOf(s.data), Size: int64(len(s.data))})
}

// checkRoom fails when the file system holding dir has less than need
// bytes free: the manifest says how much a bundle holds, so a bundle that
// cannot fit is refused before anything is written, not when the disk
// is full.
func checkRoom(dir string, need uint64) error {
	probe := dir
	for {
		if _, err := os.Stat(probe); err == nil {
			break
		}
		parent := filepath.Dir(probe)
		if parent == probe {
			return nil
		}
		probe = parent
	}
	free, err := freeSpace(probe)
	if err != nil {
		return nil // no figure to judge by; writing will tell
	}
	if need > free {
		return fmt.Errorf("the bundle needs %d MiB in %s and only %d MiB are free", need>>20, dir, free>>20)
	}
	return nil
}

type pendingSet struct {
	path string
	data []byte
}

// placeFile streams r to dst through a temporary file, synced and renamed
// into place only when its digest is f's, so dst is either the old file or
// the whole new one. A dst already holding f is kept as it is.
func placeFile(r io.Reader, dst string, f BundleFile) error {
	if d, n, err := fileDigest(dst); err == nil && d == f.Digest && n == f.Size {
		_, err := io.Copy(io.Discard, r)
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := atomicfile.Create(dst, 0o644)
	if err != nil {
		return err
	}
	defer out.Discard()
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(out, h), r); err != nil {
		return err
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != f.Digest {
		return fmt.Errorf("corrupt (digest %s, the manifest says %s)", got, f.Digest)
	}
	return out.Commit()
}
