package phases

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"
	"sync"

	"github.com/labctl/lab/provision/artifacts"
	"github.com/labctl/lab/provision/labfile"
	"github.com/labctl/lab/provision/workflow"
	"github.com/labctl/lab/templates"
	"github.com/labctl/lab/templates/nodefiles"
)

// LocalFile is a file on the machine that runs lab, to be sent to Dst on a
// node.
type LocalFile struct {
	Src  string
	Dst  string
	Mode fs.FileMode
}

// LocalUploader is implemented by connections that send local files
// without reading them into memory first (the SSH transport streams them
// and skips those already there by their sha256). Conns without it get the
// files' content through Upload.
type LocalUploader interface {
	UploadLocal(ctx context.Context, files []LocalFile) (written int, err error)
}

// Where the build source puts things on a node.
const (
	// imagesDir holds image tarballs between upload and import.
	imagesDir = "/var/lib/lab/images"
	// programStamp records, for each program lab installed, its sha256
	// and what stat said of it right after: "<hex> <size> <mtime> <ctime>
	// <inode> <path>" a line.
	programStamp = "/etc/lab/programs.stamp"
)

// sumScript prints "<path> <sha256 hex>" for each of paths that exists:
// the hex from the stamp file while the file stats as recorded there,
// else hashed. Hashing the programs (about 200 MB) on every node was most
// of a re-run's time.
//
// The stamp keeps of each file its size, mtime, ctime (in nanoseconds)
// and inode (stat -c '%s %.9Y %.9Z %i', in sums.sh and stamp.sh alike).
// Any write to the file or rename over it changes the ctime or the inode,
// and no one can set a ctime, so a file that still stats the same still
// holds what lab installed (as git trusts its index).
func sumScript(stamp string, paths []string) string {
	return script(sumsSh, append([]string{stamp}, paths...)...)
}

// stampScript writes the stamp file for the programs in bins, whose
// sha256 are sums (hex): the transport sent them or found them equal by
// sha256. Written to a temporary file and renamed. Before it, the script
// runs first (a command) and stops with its status should it fail.
func stampScript(first, stamp string, bins []LocalFile, sums []string) string {
	args := []string{stamp}
	for i, f := range bins {
		args = append(args, sums[i], f.Dst)
	}
	body := stampSh
	if first != "" {
		body = first + " || exit\n" + body
	}
	return script(body, args...)
}

// binarySums are the Set's programs' sha256, hex, in nodeFiles' order.
func binarySums(s *artifacts.Set) []string {
	sums := make([]string, len(s.Binaries))
	for i, b := range s.Binaries {
		sums[i] = strings.TrimPrefix(b.Digest, "sha256:")
	}
	return sums
}

// gatheredSet is the lab's `build` or `release` artifacts for one command:
// looked up in the cache once for the Done checks, which only read, and
// gathered (built or downloaded when missing) once for Run, whichever node
// asks first.
type gatheredSet struct {
	mu       sync.Mutex
	looked   bool // the cache was asked
	gathered bool // gathering ran (successfully or not)
	set      *artifacts.Set
	err      error
}

// artifactSet gathers the Set: from the cache, else from the lab's source.
func (r *Run) artifactSet(ctx context.Context, g *gatheredSet) (*artifacts.Set, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.set == nil && !g.gathered {
		g.gathered = true
		g.set, g.err = r.gatherArtifacts(ctx)
	}
	return g.set, g.err
}

// cachedSet is the Set when the cache holds it already, and nil when it
// does not: it never builds or downloads anything.
func (r *Run) cachedSet(ctx context.Context, g *gatheredSet) (*artifacts.Set, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.set == nil && !g.looked && !g.gathered {
		g.looked = true
		lay, arch, err := r.artifactCache()
		if err != nil {
			return nil, err
		}
		// A Set the cache lacks, or holds damaged, is for Run to gather
		// again.
		g.set, _ = lay.Cache().FindFor(&r.Lab.Kubernetes, arch)
		if g.set != nil {
			r.info("kubernetes", "", "artifacts: found in the cache (set %s, made by the %s source)", g.set.Key, g.set.Source)
		}
	}
	return g.set, nil
}

// artifactCache is the artifact cache's layout and the architecture the
// lab's Set is for.
func (r *Run) artifactCache() (artifacts.Layout, string, error) {
	arch, err := r.artifactArch()
	if err != nil {
		return artifacts.Layout{}, "", err
	}
	lay, err := artifacts.NewLayout(r.Sources.CacheDir)
	return lay, arch, err
}

// artifactArch is the Go architecture of the lab's Kubernetes nodes, which
// must all be the same.
func (r *Run) artifactArch() (string, error) {
	arch := ""
	for _, n := range r.kubeNodes() {
		f, err := r.Facts(n)
		if err != nil {
			return "", err
		}
		a, err := goarch(f.Arch)
		if err != nil {
			return "", fmt.Errorf("%s: %w", n, err)
		}
		if arch != "" && a != arch {
			return "", fmt.Errorf("the %s artifact source gathers for one architecture, and the nodes are %s and %s", r.Lab.Kubernetes.Artifacts, arch, a)
		}
		arch = a
	}
	return arch, nil
}

// gatherArtifacts returns the Set for the lab's version, source and the
// nodes' architecture: one already in the cache (made here, or imported
// from a bundle), else one the source makes now.
func (r *Run) gatherArtifacts(ctx context.Context) (*artifacts.Set, error) {
	lay, arch, err := r.artifactCache()
	if err != nil {
		return nil, err
	}
	k := &r.Lab.Kubernetes
	log := &lineWriter{emit: func(line string) { r.info("kubernetes", "", "%s", line) }}
	o := artifacts.GatherOptions{Log: log}
	if u := r.Sources.Userland; u != nil {
		o.Userland = func() (string, error) { return u(lay.NodeImageDir()) }
	}
	r.info("kubernetes", "", "artifacts: Kubernetes %s for %s from the %s source (cache %s)", k.Version, arch, k.Artifacts, lay.ArtifactsDir())
	s, found, err := lay.Cache().GatherFor(ctx, k, arch, o)
	log.Flush()
	if err != nil {
		return nil, err
	}
	if found {
		r.info("kubernetes", "", "artifacts: found in the cache (set %s, made by the %s source)", s.Key, s.Source)
	}
	return s, nil
}

// nodeImages are the images node runs: control planes all, other nodes
// all but the control plane's own.
func (r *Run) nodeImages(node string, s *artifacts.Set) []artifacts.Image {
	cp := r.node(node).HasRole(labfile.RoleControlPlane)
	var out []artifacts.Image
	for _, im := range s.Images {
		if cp || !im.ControlPlane {
			out = append(out, im)
		}
	}
	return out
}

// nodeFiles are the programs and units every Kubernetes node receives:
// the programs from the Set, the units from nodefiles.
func (r *Run) nodeFiles(node string, s *artifacts.Set) ([]LocalFile, []templates.File, error) {
	var bins []LocalFile
	for _, b := range s.Binaries {
		bins = append(bins, LocalFile{Src: s.Path(b.Digest), Dst: b.Path, Mode: 0o755})
	}
	units, err := r.files(node, nodefiles.Kubernetes)
	return bins, units, err
}

// presentImages asks containerd which of the wanted images it holds, by
// reference, with the ID (configuration digest) of each.
func presentImages(ctx context.Context, conn Conn, want []artifacts.Image) (map[string]string, error) {
	var refs []string
	for _, im := range want {
		refs = append(refs, im.Ref)
	}
	// ctr lists manifests; the configuration digest is inside each.
	out, err := conn.Run(ctx, script(imagesSh, refs...))
	if err != nil {
		return nil, err
	}
	have := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if ref, id, ok := strings.Cut(line, " "); ok {
			have[ref] = id
		}
	}
	return have, nil
}

// missingImages are the node's images containerd lacks or holds with
// another ID.
func (r *Run) missingImages(ctx context.Context, node string, conn Conn, s *artifacts.Set) ([]artifacts.Image, error) {
	return missingOf(ctx, conn, r.nodeImages(node, s))
}

// missingOf are the images of want that containerd lacks or holds with
// another ID.
func missingOf(ctx context.Context, conn Conn, want []artifacts.Image) ([]artifacts.Image, error) {
	if len(want) == 0 {
		return nil, nil
	}
	have, err := presentImages(ctx, conn, want)
	if err != nil {
		return nil, err
	}
	var missing []artifacts.Image
	for _, im := range want {
		if have[im.Ref] != im.ID {
			missing = append(missing, im)
		}
	}
	return missing, nil
}

// importImages sends the tarballs of images (path names the local file
// of a digest) and imports them into containerd's k8s.io namespace, where
// the kubelet looks, then checks that containerd shows each one with its
// ID. The tarballs go once imported: containerd keeps its own copy.
func importImages(ctx context.Context, conn Conn, images []artifacts.Image, path func(digest string) string) error {
	if len(images) == 0 {
		return nil
	}
	var tars []LocalFile
	var names []string
	for i, im := range images {
		dst := fmt.Sprintf("%s/%02d.tar", imagesDir, i)
		tars = append(tars, LocalFile{Src: path(im.Digest), Dst: dst, Mode: 0o600})
		names = append(names, dst)
	}
	if _, err := uploadLocal(ctx, conn, tars); err != nil {
		return err
	}
	if _, err := conn.Run(ctx, script(importImagesSh, names...)); err != nil {
		return fmt.Errorf("importing images: %w", err)
	}
	if still, err := missingOf(ctx, conn, images); err != nil {
		return err
	} else if len(still) > 0 {
		return fmt.Errorf("containerd does not show image %s with ID %s after importing it", still[0].Ref, still[0].ID)
	}
	return nil
}

// setInstalled reports whether node has the Set's programs and units,
// the kubelet enabled, and every image it needs.
func (r *Run) setInstalled(ctx context.Context, node string, s *artifacts.Set) (bool, error) {
	conn, err := r.Conn(ctx, node)
	if err != nil {
		return false, err
	}
	bins, units, err := r.nodeFiles(node, s)
	if err != nil {
		return false, err
	}
	var paths []string
	want := map[string]string{}
	for i, sum := range binarySums(s) {
		paths = append(paths, bins[i].Dst)
		want[bins[i].Dst] = sum
	}
	for _, u := range units {
		paths = append(paths, u.Path)
		want[u.Path] = sha256Hex(u.Content)
	}
	sort.Strings(paths)
	out, err := conn.Run(ctx, sumScript(programStamp, paths)+"\nsystemctl is-enabled kubelet 2>/dev/null; true")
	if err != nil {
		return false, err
	}
	have := map[string]string{}
	enabled := false
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if p, sum, ok := strings.Cut(line, " "); ok {
			have[p] = sum
		} else if line == "enabled" {
			enabled = true
		}
	}
	for p, sum := range want {
		if have[p] != sum {
			return false, nil
		}
	}
	if !enabled {
		return false, nil
	}
	missing, err := r.missingImages(ctx, node, conn, s)
	return err == nil && len(missing) == 0, err
}

// installSet puts the Set on node: the programs (sent only where they
// differ), the kubelet's units, and the images containerd lacks, imported
// into its k8s.io namespace, where the kubelet looks.
func (r *Run) installSet(ctx context.Context, node string, s *artifacts.Set) error {
	conn, err := r.Conn(ctx, node)
	if err != nil {
		return err
	}
	bins, units, err := r.nodeFiles(node, s)
	if err != nil {
		return err
	}
	if _, err := uploadLocal(ctx, conn, bins); err != nil {
		return err
	}
	changed, err := conn.Upload(ctx, units)
	if err != nil {
		return err
	}
	enable := "systemctl enable --quiet kubelet"
	if changed > 0 {
		enable = "systemctl daemon-reload && " + enable
	}
	if _, err := conn.Run(ctx, stampScript(enable, programStamp, bins, binarySums(s))); err != nil {
		return err
	}
	missing, err := r.missingImages(ctx, node, conn, s)
	if err != nil {
		return err
	}
	if len(missing) == 0 {
		return nil
	}
	if err := importImages(ctx, conn, missing, s.Path); err != nil {
		return err
	}
	r.info("kubernetes", node, "imported %d images", len(missing))
	return nil
}

// uploadLocal sends local files, streaming them when the connection can.
func uploadLocal(ctx context.Context, conn Conn, files []LocalFile) (int, error) {
	if u, ok := conn.(LocalUploader); ok {
		return u.UploadLocal(ctx, files)
	}
	tf := make([]templates.File, len(files))
	for i, f := range files {
		data, err := os.ReadFile(f.Src)
		if err != nil {
			return 0, err
		}
		tf[i] = templates.File{Path: f.Dst, Mode: f.Mode, Content: data}
	}
	return conn.Upload(ctx, tf)
}

// kubernetesArtifacts is the kubernetes phase of a lab whose artifacts
// are gathered on the machine that runs lab (build or release): the nodes
// fetch nothing.
func (r *Run) kubernetesArtifacts() workflow.Phase {
	v := r.Lab.Kubernetes.Version
	g := &gatheredSet{}
	title, gather := "built from source on this machine",
		"build (or find in the artifact cache) Kubernetes "+v+", etcd, CoreDNS, pause and the CNI loopback plugin from source"
	if r.Lab.Kubernetes.Artifacts == labfile.ArtifactsRelease {
		title, gather = "from the release downloads, gathered on this machine",
			"download (or find in the artifact cache) kubeadm, kubelet, kubectl "+v+" and the CNI plugins, checked against their published checksums, and pull the images `kubeadm config images list` names"
	}
	return workflow.Phase{
		Name:  nodefiles.Kubernetes,
		Needs: needsFacts,
		Title: "kubeadm, kubelet, kubectl " + v + " and its images, " + title,
		Nodes: r.kubeNodes,
		Done: func(ctx context.Context, node string) (bool, error) {
			// Done only reads: a Set the cache lacks is not on the
			// nodes either, and Run gathers it.
			s, err := r.cachedSet(ctx, g)
			if err != nil || s == nil {
				return false, err
			}
			return r.setInstalled(ctx, node, s)
		},
		Run: func(ctx context.Context, node string) error {
			s, err := r.artifactSet(ctx, g)
			if err != nil {
				return err
			}
			return r.installSet(ctx, node, s)
		},
		Describe: func(node string) []string {
			return []string{
				gather,
				"send kubeadm, kubelet, kubectl to /usr/bin and loopback to /opt/cni/bin where they differ",
				"write " + templates.KubeletUnitPath + " and " + templates.KubeletDropInPath + "; systemctl enable kubelet",
				"import the images this node runs into containerd (ctr -n k8s.io images import) where missing",
			}
		},
	}
}

// lineWriter turns written bytes into one call per line.
type lineWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	emit func(string)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for {
		line, err := w.buf.ReadString('\n')
		if err != nil {
			w.buf.WriteString(line)
			return len(p), nil
		}
		w.emit(strings.TrimRight(line, "\n"))
	}
}

// Flush emits a last line without a newline.
func (w *lineWriter) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.buf.Len() > 0 {
		w.emit(w.buf.String())
		w.buf.Reset()
	}
}
