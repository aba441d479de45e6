// Package artifacts gathers what a lab's Kubernetes nodes run — kubeadm,
// kubelet and kubectl, the CNI loopback plugin, and the images of the
// control plane, kube-proxy, CoreDNS and the pod sandbox — once, on the
// machine that runs lab, into a content-addressed cache. The provisioning
// steps then push the same files to every node over SSH, so nodes need no
// registry and no internet, and a six-node lab gathers everything once.
//
// The cache holds one directory per Kubernetes version:
//
//	<root>/<version>/blobs/sha256/<hex>   every file, named by its digest
//	<root>/<version>/<key>.json           a Set: which blob is which
//
// Cilium, which the build source also makes (BuildCilium), has a directory
// of its own per version, laid out the same way:
//
//	<root>/cilium/v<version>/blobs/sha256/<hex>
//	<root>/cilium/v<version>/<key>.json    a CiliumSet: images and chart
//
// A Set's key hashes everything that went into it (source, versions,
// architecture, toolchain, image repository), so a changed input makes a new
// Set and an unchanged one is found again without work. Blobs are verified
// against their digest whenever a Set is loaded.
//
// The `release` source (Release) gathers the official downloads and
// images; the `build` source (Build) makes every artifact from source
// through the Go module proxy, for machines that reach no image registry.
// Bundles (WriteBundle, ReadBundle) carry Sets to machines that can do
// neither.
package artifacts

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/labctl/lab/internal/atomicfile"
	"github.com/labctl/lab/internal/filelock"
)

// Binary is a program installed on nodes.
type Binary struct {
	// Name is the program's name: kubeadm, kubelet, kubectl, loopback.
	Name string `json:"name"`
	// Path is where it goes on a node.
	Path string `json:"path"`
	// Digest is "sha256:<hex>" of the file.
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
}

// Image is a container image kept as a docker-archive tarball, the form
// `ctr images import` reads.
type Image struct {
	// Ref is the name kubeadm and the kubelet ask for, e.g.
	// registry.k8s.io/kube-apiserver:v1.34.12.
	Ref string `json:"ref"`
	// Digest is "sha256:<hex>" of the tarball.
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
	// ID is the digest of the image's configuration: the image ID
	// containerd reports once the tarball is imported.
	ID string `json:"id"`
	// ControlPlane is true for images only control planes run (API
	// server, controller manager, scheduler, etcd).
	ControlPlane bool `json:"controlPlane,omitempty"`
	// Pulled is the registry manifest the release source pulled, as
	// repository@sha256:...; empty for built images.
	Pulled string `json:"pulled,omitempty"`
}

// Set is every artifact one lab needs, as gathered by one source.
type Set struct {
	// Version is the Kubernetes version, e.g. v1.34.12.
	Version string `json:"version"`
	// Arch is the nodes' Go architecture (amd64, arm64).
	Arch string `json:"arch"`
	// Source is the artifact source that made the Set (build).
	Source string `json:"source"`
	// Key hashes every input; it names the Set's file.
	Key string `json:"key"`
	// Inputs records what the key covers, for people.
	Inputs   map[string]string `json:"inputs"`
	Binaries []Binary          `json:"binaries"`
	Images   []Image           `json:"images"`

	dir string // the version directory holding the blobs
}

// Path is the local file holding the blob with the given digest.
func (s *Set) Path(digest string) string { return blobPath(s.dir, digest) }

// Binary returns the binary called name, or nil.
func (s *Set) Binary(name string) *Binary {
	for i := range s.Binaries {
		if s.Binaries[i].Name == name {
			return &s.Binaries[i]
		}
	}
	return nil
}

// Cache is the artifact cache rooted at a directory (see Layout for where
// lab keeps it).
type Cache struct {
	Root string
}

// versionDir holds one Kubernetes version's blobs and Sets.
func (c Cache) versionDir(version string) string { return filepath.Join(c.Root, version) }

func setPath(dir, key string) string { return filepath.Join(dir, key+".json") }

func blobPath(dir, digest string) string {
	return filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(digest, "sha256:"))
}

// Load returns the Set with the given key for version, after checking
// every blob against its digest. A missing Set is reported with
// errors.Is(err, fs.ErrNotExist).
func (c Cache) Load(version, key string) (*Set, error) {
	dir := c.versionDir(version)
	data, err := os.ReadFile(setPath(dir, key))
	if err != nil {
		return nil, fmt.Errorf("artifact cache: %w", err)
	}
	var s Set
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("artifact cache: %s: %w", setPath(dir, key), err)
	}
	if err := s.check(version, key); err != nil {
		return nil, fmt.Errorf("artifact cache: %s: %w", setPath(dir, key), err)
	}
	s.dir = dir
	v := loadVerified(dir)
	defer v.save()
	for _, b := range s.Binaries {
		if err := v.verify(b.Digest, b.Size); err != nil {
			return nil, fmt.Errorf("artifact cache: %s: %w", b.Name, err)
		}
	}
	for _, im := range s.Images {
		if err := v.verify(im.Digest, im.Size); err != nil {
			return nil, fmt.Errorf("artifact cache: image %s: %w", im.Ref, err)
		}
	}
	return &s, nil
}

// verified remembers which blobs of a version directory were hashed and
// found whole, by what stat said of each just before: hashing every blob
// of a lab's Set (about 1 GiB) took 1–3 s of every lab up. A blob that
// still stats the same (its fingerprint: on Unix size, mtime, ctime, inode
// and device) is taken as verified; any write or rename changes its ctime
// or inode and it is hashed again.
type verified struct {
	dir     string
	seen    map[string]string // digest → fingerprint
	changed bool
}

// verifiedFile is the record in a version directory; not *.json, which
// Find reads as Sets.
const verifiedFile = "verified"

func loadVerified(dir string) *verified {
	v := &verified{dir: dir, seen: map[string]string{}}
	if data, err := os.ReadFile(filepath.Join(dir, verifiedFile)); err == nil {
		_ = json.Unmarshal(data, &v.seen) // a damaged record only costs hashing
	}
	return v
}

// verify checks one blob: by its fingerprint when it was verified before,
// else by hashing it.
func (v *verified) verify(digest string, size int64) error {
	before, ferr := fingerprint(blobPath(v.dir, digest))
	if ferr == nil && v.seen[digest] == before {
		return nil
	}
	if err := verifyBlob(v.dir, digest, size); err != nil {
		if _, ok := v.seen[digest]; ok {
			delete(v.seen, digest)
			v.changed = true
		}
		return err
	}
	// Recorded only if the blob did not change while it was hashed.
	if after, err := fingerprint(blobPath(v.dir, digest)); ferr == nil && err == nil && after == before {
		v.seen[digest] = before
		v.changed = true
	}
	return nil
}

// save writes the record back when it changed, atomically; two lab
// commands saving at once lose at most some entries, which costs a hash
// later, and so does a record that could not be written.
func (v *verified) save() {
	if !v.changed {
		return
	}
	data, err := json.Marshal(v.seen)
	if err != nil {
		return
	}
	_ = atomicfile.WriteFile(filepath.Join(v.dir, verifiedFile), data, 0o600)
}

var (
	setKey       = regexp.MustCompile(`^[0-9a-f]{20}$`)
	sha256Digest = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	// imageRef is a reference as kubeadm prints them: no spaces, quotes
	// or shell characters.
	imageRef = regexp.MustCompile(`^[a-z0-9][A-Za-z0-9_./:@-]*$`)
)

// maxSetSize bounds a Set file: a few KiB in practice.
const maxSetSize = 1 << 20

// check refuses a Set this lab would not have made. A Set decides which
// files go where on every node, as root, and a Set imported from a bundle
// was made on somebody else's machine: the bundle's digests prove it was
// not damaged on the way, not that its maker meant well. So a Set may only
// name the programs lab installs, at the paths lab installs them to, and
// its key must be the hash of its inputs, as the Sets lab makes are.
func (s *Set) check(version, key string) error {
	switch {
	case s.Version != version:
		return fmt.Errorf("the Set is for Kubernetes %s, not %s", s.Version, version)
	case s.Key != key || !setKey.MatchString(s.Key):
		return fmt.Errorf("the Set's key %q does not match its file name %s.json", s.Key, key)
	case inputKey(s.Inputs) != s.Key:
		return fmt.Errorf("the Set's key %s is not the hash of its inputs (edited by hand?)", s.Key)
	}
	for _, b := range s.Binaries {
		if want, ok := nodeBinaries[b.Name]; !ok || b.Path != want {
			return fmt.Errorf("the Set installs %q at %q; lab installs only kubeadm, kubelet, kubectl and loopback, at their own paths", b.Name, b.Path)
		}
		if !sha256Digest.MatchString(b.Digest) || b.Size < 0 {
			return fmt.Errorf("program %s: digest %q is not sha256:<64 hex digits>", b.Name, b.Digest)
		}
	}
	for _, im := range s.Images {
		if !imageRef.MatchString(im.Ref) {
			return fmt.Errorf("image reference %q is not one kubeadm would print", im.Ref)
		}
		if !sha256Digest.MatchString(im.Digest) || !sha256Digest.MatchString(im.ID) || im.Size < 0 {
			return fmt.Errorf("image %s: digest %q or ID %q is not sha256:<64 hex digits>", im.Ref, im.Digest, im.ID)
		}
	}
	return nil
}

// Query says which Set a lab needs: what the Set is for, not how it was
// made, so that a Set imported from a bundle (made elsewhere, with another
// Go toolchain or mirror) serves the lab as well as one made here.
type Query struct {
	Version         string
	Arch            string
	Source          string
	ImageRepository string
}

// recipes are the current recipe of each source.
var recipes = map[string]string{SourceBuild: recipe, SourceRelease: releaseRecipe}

// current reports whether s was made the way this lab makes Sets: the
// same recipe, CNI plugins release and, for built Sets, pause program.
// Find never returns older Sets, whoever made them.
func current(s *Set) bool {
	if s.Inputs["recipe"] != recipes[s.Source] || s.Inputs["cniPlugins"] != CNIPluginsVersion {
		return false
	}
	return s.Source != SourceBuild || s.Inputs["pause"] == digestOf(pauseSource)
}

// Find returns the newest intact Set in the cache that answers q. When
// there is none the error satisfies errors.Is(err, fs.ErrNotExist).
func (c Cache) Find(q Query) (*Set, error) {
	if q.ImageRepository == "" {
		q.ImageRepository = DefaultImageRepository
	}
	dir := c.versionDir(q.Version)
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	var (
		best     *Set
		bestTime time.Time
		lastErr  error
	)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var s Set
		if json.Unmarshal(data, &s) != nil || s.Version != q.Version || s.Arch != q.Arch || s.Source != q.Source ||
			s.Inputs["imageRepository"] != q.ImageRepository || !current(&s) {
			continue
		}
		fi, err := os.Stat(f)
		if err != nil || (best != nil && !fi.ModTime().After(bestTime)) {
			continue
		}
		loaded, err := c.Load(s.Version, s.Key)
		if err != nil {
			lastErr = err
			continue
		}
		best, bestTime = loaded, fi.ModTime()
	}
	if best == nil {
		if lastErr != nil {
			return nil, lastErr
		}
		return nil, fmt.Errorf("artifact cache %s: no %s Set of Kubernetes %s for %s with images named %s/...: %w",
			c.Root, q.Source, q.Version, q.Arch, q.ImageRepository, fs.ErrNotExist)
	}
	return best, nil
}

// store writes s's file; its blobs must already be in place.
func (c Cache) store(s *Set) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(setPath(s.dir, s.Key), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("artifact cache: %w", err)
	}
	return nil
}

// putBlob moves the file src into the version directory under its digest
// and returns the digest and size.
func putBlob(dir, src string) (digest string, size int64, err error) {
	digest, size, err = fileDigest(src)
	if err != nil {
		return "", 0, err
	}
	dst := blobPath(dir, digest)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", 0, fmt.Errorf("artifact cache: %w", err)
	}
	if err := os.Chmod(src, 0o644); err != nil {
		return "", 0, fmt.Errorf("artifact cache: %w", err)
	}
	if err := os.Rename(src, dst); err != nil {
		return "", 0, fmt.Errorf("artifact cache: %w", err)
	}
	return digest, size, nil
}

func verifyBlob(dir, digest string, size int64) error {
	d, n, err := fileDigest(blobPath(dir, digest))
	if err != nil {
		return err
	}
	if n != size || d != digest {
		return fmt.Errorf("blob %s is corrupt (%d bytes, %s)", digest, n, d)
	}
	return nil
}

// fileDigest is "sha256:<hex>" of a file's content, and its size.
func fileDigest(p string) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("%s: %w", p, err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), n, nil
}

// lock takes an exclusive lock on a version directory, so that two lab
// commands never build the same version at once; the second then finds
// the first one's Set.
func lock(dir string) (unlock func(), err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("artifact cache: %w", err)
	}
	f, err := filelock.Open(filepath.Join(dir, "lock"), 0o644)
	if err != nil {
		return nil, fmt.Errorf("artifact cache: %w", err)
	}
	return func() { f.Close() }, nil
}
