// Package nodeimage builds the image lab's container nodes boot: a Debian
// root file system made by debootstrap from Debian's own packages (no image
// registry needed), with systemd as init, sshd, and the software every phase
// of `lab up` expects to find (haproxy, keepalived, containerd, runc, ...),
// imported with `docker import`.
//
// Builds are cached at two levels. The debootstrap result is kept as a
// tarball under the cache directory, keyed by what debootstrap was asked
// for, so changing only lab's own files re-imports in seconds. The image
// carries a label with a hash of all inputs, so a build whose inputs did
// not change does nothing at all.
package nodeimage

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/labctl/lab/internal/atomicfile"
	"github.com/labctl/lab/internal/filelock"
	"github.com/labctl/lab/provision/labfile"
	"github.com/labctl/lab/provision/provider/docker/dockercli"
)

// Labels set on the image.
const (
	// LabelHash holds the hash of every input of the build.
	LabelHash = "io.labctl.image-hash"
	// LabelKind marks images built by this package.
	LabelKind = "io.labctl.image"
)

// Suite is the Debian release the image is made of.
const Suite = "bookworm"

// DefaultMirror is used when the machine's apt sources name no Debian
// mirror.
const DefaultMirror = "http://deb.debian.org/debian"

// buildVersion changes whenever the way an image is put together changes
// in a way its inputs do not show, to force a rebuild.
const buildVersion = "3"

// packages are installed by debootstrap (with their dependencies). Nodes
// usually have no route to a mirror, so whatever a phase needs on a node
// must be here.
var packages = []string{
	"systemd", "systemd-sysv", "dbus",
	"openssh-server", "sudo",
	"haproxy", "keepalived",
	"iproute2", "iptables", "nftables", "ipvsadm", "conntrack", "ethtool", "socat", "iputils-ping",
	"containerd", "runc",
	"kmod", "procps",
	"curl", "ca-certificates", "gpg",
	// A router node's BGP speaker (the bgp phase enables it there only).
	"frr",
	// Not for the node itself: the build artifact source takes the Cilium
	// agent image's userland from this root file system, and the agent
	// compiles its datapath with clang at run time and runs ipset and
	// bpftool.
	"clang-19", "ipset", "bpftool",
}

// Entrypoint is the image's entrypoint: it fixes the cgroup tree for
// systemd and the kubelet (see rootfs/usr/local/bin/lab-entrypoint), then
// runs the command, /sbin/init.
const Entrypoint = "/usr/local/bin/lab-entrypoint"

// BaseTarball is the Debian root file system the node image is made of,
// kept under cacheDir ("" for the default) once an image has been built.
// The `build` artifact source takes the userland of the kube-proxy image
// (Debian's iptables) from it, so that no package is fetched twice.
func BaseTarball(cacheDir string) (string, error) {
	dir, err := resolveCacheDir(cacheDir)
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, "base-"+short(baseKey())+".tar")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("the node image's Debian root file system is not in the cache (build the image: lab image build): %w", err)
	}
	return p, nil
}

// Packages returns the Debian packages the image is built with.
func Packages() []string { return append([]string(nil), packages...) }

// rootfs holds the files lab adds to the image, at their paths in it.
//
//go:embed rootfs
var rootfs embed.FS

// links are the symbolic links lab adds: services it enables, and units it
// masks because they cannot work in a container (there is no console to
// run a getty on, and the host owns the kernel's debug file systems).
var links = map[string]string{
	"etc/systemd/system/ssh.service.wants/lab-ssh-hostkeys.service": "/etc/systemd/system/lab-ssh-hostkeys.service",
	"etc/systemd/system/getty.target":                               "/dev/null",
	"etc/systemd/system/console-getty.service":                      "/dev/null",
	"etc/systemd/system/sys-kernel-config.mount":                    "/dev/null",
	"etc/systemd/system/sys-kernel-debug.mount":                     "/dev/null",
	"etc/systemd/system/sys-kernel-tracing.mount":                   "/dev/null",
	"etc/systemd/system/systemd-firstboot.service":                  "/dev/null",
}

// Options configure Build. The zero value builds labfile.DefaultDockerImage.
type Options struct {
	// Tag is the image name:tag to create.
	Tag string
	// CacheDir keeps downloaded packages and the debootstrap tarball.
	// Default: the user's cache directory + lab/nodeimage.
	CacheDir string
	// Mirror is the Debian mirror. Default: the one this machine's apt
	// uses (see DetectMirror).
	Mirror string
	// Docker is the client to import with. Default: dockercli.New("").
	Docker *dockercli.CLI
	// Force rebuilds even when the image is current, and redoes debootstrap.
	Force bool
	// Log receives progress lines. Default: discarded.
	Log io.Writer
}

// Result says what Build did and how long it took.
type Result struct {
	Tag  string
	Hash string
	// Current is true when the image was already up to date and nothing
	// was done.
	Current bool
	// BaseCached is true when the debootstrap tarball came from the cache.
	BaseCached bool
	// Debootstrap and Import time the two stages (zero when skipped).
	Debootstrap time.Duration
	Import      time.Duration
}

// ErrNeedsLinux is what Build returns on other systems: debootstrap is a
// Debian tool, and cleaning up after a failed run detaches the mounts it
// left inside the root file system, which only Linux has.
var ErrNeedsLinux = errors.New("lab image build needs Linux (debootstrap and mounts); run it on a Linux host or in a Linux VM")

// Build makes the node image unless an image with the same inputs exists.
func Build(ctx context.Context, o Options) (*Result, error) {
	if runtime.GOOS != "linux" {
		return nil, ErrNeedsLinux
	}
	if err := o.setDefaults(); err != nil {
		return nil, err
	}
	overlay, err := overlayEntries()
	if err != nil {
		return nil, err
	}
	res := &Result{Tag: o.Tag, Hash: imageHash(overlay)}

	// Builds sharing a cache (parallel test packages) take turns; the
	// second then finds the image current.
	unlock, err := lockDir(o.CacheDir)
	if err != nil {
		return nil, err
	}
	defer unlock()

	if !o.Force {
		have, err := ImageHash(ctx, o.Docker, o.Tag)
		if err != nil {
			return nil, err
		}
		if have == res.Hash {
			res.Current = true
			o.logf("image %s is current (%s)", o.Tag, short(res.Hash))
			return res, nil
		}
	}

	base, cached, took, err := o.base(ctx)
	if err != nil {
		return nil, err
	}
	res.BaseCached, res.Debootstrap = cached, took

	old, _ := o.Docker.Run(ctx, "image", "inspect", "--format", "{{.Id}}", o.Tag)
	start := time.Now()
	if err := o.importImage(ctx, base, overlay, res.Hash); err != nil {
		return nil, err
	}
	res.Import = time.Since(start)
	// The image the tag used to name would linger untagged; remove it
	// unless a container still uses it.
	if id := strings.TrimSpace(string(old)); id != "" {
		o.Docker.Run(ctx, "image", "rm", id)
	}
	o.logf("image %s built (%s)", o.Tag, short(res.Hash))
	return res, nil
}

// BuildBase makes only the Debian root file system the image is made of,
// unless the cache has it, and returns its tarball (what BaseTarball then
// finds). It needs debootstrap and root but no Docker: the build artifact
// source takes userlands from this tarball, and a machine that builds
// artifacts for other hosts need not run Docker. Tag and Docker are
// ignored.
func BuildBase(ctx context.Context, o Options) (tarball string, cached bool, err error) {
	if runtime.GOOS != "linux" {
		return "", false, ErrNeedsLinux
	}
	if err := o.setCacheDefaults(); err != nil {
		return "", false, err
	}
	unlock, err := lockDir(o.CacheDir)
	if err != nil {
		return "", false, err
	}
	defer unlock()
	tarball, cached, _, err = o.base(ctx)
	return tarball, cached, err
}

// base returns the debootstrap tarball, made now unless the cache has it
// (or o.Force), and how long debootstrap took. The caller holds the
// cache's lock.
func (o *Options) base(ctx context.Context) (tarball string, cached bool, took time.Duration, err error) {
	tarball = filepath.Join(o.CacheDir, "base-"+short(baseKey())+".tar")
	if _, err := os.Stat(tarball); err == nil && !o.Force {
		o.logf("using cached root file system %s", tarball)
		return tarball, true, 0, nil
	}
	start := time.Now()
	if err := o.debootstrap(ctx, tarball); err != nil {
		return "", false, 0, err
	}
	return tarball, false, time.Since(start), nil
}

// lockDir takes an exclusive lock on dir, creating it.
func lockDir(dir string) (unlock func(), err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("node image cache: %w", err)
	}
	f, err := filelock.Open(filepath.Join(dir, "lock"), 0o644)
	if err != nil {
		return nil, fmt.Errorf("node image cache: %w", err)
	}
	return func() { f.Close() }, nil
}

// ImageHash returns the input hash recorded on image tag, or "" when the
// image does not exist or was not built by this package.
func ImageHash(ctx context.Context, cli *dockercli.CLI, tag string) (string, error) {
	out, err := cli.Run(ctx, "image", "inspect", "--format", `{{index .Config.Labels "`+LabelHash+`"}}`, tag)
	if err != nil {
		if dockercli.IsNotFound(err) {
			return "", nil
		}
		return "", fmt.Errorf("inspect image %s: %w", tag, err)
	}
	h := strings.TrimSpace(string(out))
	if h == "<no value>" {
		h = ""
	}
	return h, nil
}

func (o *Options) setDefaults() error {
	if o.Tag == "" {
		o.Tag = labfile.DefaultDockerImage
	}
	if err := o.setCacheDefaults(); err != nil {
		return err
	}
	if o.Docker == nil {
		cli, err := dockercli.New("")
		if err != nil {
			return err
		}
		o.Docker = cli
	}
	return nil
}

// setCacheDefaults fills in what making the root file system needs: the
// cache directory, the mirror and the log.
func (o *Options) setCacheDefaults() error {
	dir, err := resolveCacheDir(o.CacheDir)
	if err != nil {
		return err
	}
	o.CacheDir = dir
	if o.Mirror == "" {
		o.Mirror = DetectMirror("/")
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	return nil
}

// resolveCacheDir is dir made absolute, or the default cache directory.
func resolveCacheDir(dir string) (string, error) {
	if dir == "" {
		user, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("node image cache: %w", err)
		}
		dir = filepath.Join(user, "lab", "nodeimage")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("node image cache: %w", err)
	}
	return abs, nil
}

func (o *Options) logf(format string, args ...any) {
	fmt.Fprintf(o.Log, "nodeimage: "+format+"\n", args...)
}

// baseKey identifies what debootstrap is asked to make. The mirror is left
// out: every mirror serves the same suite.
func baseKey() string {
	h := sha256.New()
	fmt.Fprintf(h, "debootstrap minbase %s %s\n", Suite, runtime.GOARCH)
	pk := Packages()
	sort.Strings(pk)
	fmt.Fprintln(h, strings.Join(pk, ","))
	return hex.EncodeToString(h.Sum(nil))
}

// imageHash covers every input of the image.
func imageHash(overlay []entry) string {
	h := sha256.New()
	fmt.Fprintf(h, "lab node image %s\nbase %s\n", buildVersion, baseKey())
	for _, e := range overlay {
		fmt.Fprintf(h, "%s %o %q %d\n", e.name, e.mode, e.link, len(e.data))
		h.Write(e.data)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// debootstrap makes the Debian root file system and stores it as a tarball
// at dst.
func (o *Options) debootstrap(ctx context.Context, dst string) error {
	if os.Geteuid() != 0 {
		return errors.New("building the node image needs root (debootstrap creates device nodes and chroots)")
	}
	if _, err := exec.LookPath("debootstrap"); err != nil {
		return fmt.Errorf("building the node image needs debootstrap (apt-get install debootstrap): %w", err)
	}
	debs := filepath.Join(o.CacheDir, "debs")
	if err := os.MkdirAll(debs, 0o755); err != nil {
		return fmt.Errorf("node image cache: %w", err)
	}
	dir, err := os.MkdirTemp(o.CacheDir, "rootfs-")
	if err != nil {
		return fmt.Errorf("node image cache: %w", err)
	}
	defer removeRootfs(dir)

	o.logf("debootstrap %s from %s into %s", Suite, o.Mirror, dir)
	logPath := filepath.Join(o.CacheDir, "debootstrap.log")
	args := []string{
		"--variant=minbase",
		"--components=main",
		"--include=" + strings.Join(packages, ","),
		"--cache-dir=" + debs,
		Suite, dir, o.Mirror,
	}
	if err := runLogged(ctx, logPath, "debootstrap", args...); err != nil {
		return err
	}

	// What `apt-get clean` would do, plus the package lists: the image is
	// smaller and nodes cannot reach a mirror to refresh them anyway.
	for _, pattern := range []string{
		"var/cache/apt/archives/*.deb",
		"var/cache/apt/*.bin",
		"var/lib/apt/lists/*_Packages",
		"var/lib/apt/lists/*_Release",
		"var/lib/apt/lists/*_InRelease",
		"var/lib/apt/lists/*_Translation-*",
		"var/log/*.log",
		"var/log/apt/*",
	} {
		matches, _ := filepath.Glob(filepath.Join(dir, pattern))
		for _, m := range matches {
			if err := os.Remove(m); err != nil {
				return fmt.Errorf("clean root file system: %w", err)
			}
		}
	}

	tmp := dst + ".tmp"
	if err := runLogged(ctx, logPath, "tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-C", dir, "-cf", tmp, "."); err != nil {
		os.Remove(tmp)
		return err
	}
	// The tarball's presence is what says debootstrap is done: it must
	// not appear before all of it is on disk.
	if err := atomicfile.Replace(tmp, dst); err != nil {
		return fmt.Errorf("node image cache: %w", err)
	}
	return nil
}

// runLogged runs a command with its output appended to logPath; a failure
// quotes the end of the log.
func runLogged(ctx context.Context, logPath, name string, args ...string) error {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	fmt.Fprintf(f, "\n$ %s %s\n", name, strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w (log %s):\n%s", name, err, logPath, tail(logPath, 15))
	}
	return nil
}

func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// removeRootfs deletes a debootstrap directory. A debootstrap that failed
// half way may leave /proc, /sys or /dev/pts mounted inside it; those are
// detached first so that removing the directory never reaches the host's.
func removeRootfs(dir string) {
	for _, m := range mountsUnder(dir) {
		if err := detach(m); err != nil {
			// Leave the directory rather than risk deleting through a mount.
			return
		}
	}
	if len(mountsUnder(dir)) > 0 {
		return
	}
	os.RemoveAll(dir)
}

// mountsUnder lists mount points at or below dir, deepest first.
func mountsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMount(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v byte
			ok := true
			for _, c := range []byte(s[i+1 : i+4]) {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				v = v*8 + (c - '0')
			}
			if ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// importImage streams the base tarball, rewritten with lab's changes, into
// `docker import`.
func (o *Options) importImage(ctx context.Context, base string, overlay []entry, hash string) error {
	f, err := os.Open(base)
	if err != nil {
		return fmt.Errorf("node image: %w", err)
	}
	defer f.Close()
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(rewrite(pw, f, overlay)) }()
	o.logf("importing %s", o.Tag)
	_, err = o.Docker.RunWithInput(ctx, pr, "import",
		"--change", `ENTRYPOINT ["`+Entrypoint+`"]`,
		"--change", `CMD ["/sbin/init"]`,
		"--change", "LABEL "+LabelHash+"="+hash,
		"--change", "LABEL "+LabelKind+"=node",
		"--message", "lab node image",
		"-", o.Tag)
	pr.CloseWithError(io.ErrClosedPipe) // unblocks the writer if import failed early
	if err != nil {
		return fmt.Errorf("import node image %s: %w", o.Tag, err)
	}
	return nil
}

// entry is one file, directory or link lab adds to the image.
type entry struct {
	name string // relative, no leading ./ or /
	mode int64
	data []byte
	link string // symlink target, if a link
	dir  bool
}

// overlayEntries lists lab's additions in a stable order.
func overlayEntries() ([]entry, error) {
	var out []entry
	err := fs.WalkDir(rootfs, "rootfs", func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == "rootfs" {
			return err
		}
		name := strings.TrimPrefix(p, "rootfs/")
		if d.IsDir() {
			out = append(out, entry{name: name, mode: 0o755, dir: true})
			return nil
		}
		data, err := rootfs.ReadFile(p)
		if err != nil {
			return err
		}
		mode := int64(0o644)
		if strings.HasPrefix(name, "usr/local/bin/") {
			mode = 0o755
		}
		out = append(out, entry{name: name, mode: mode, data: data})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("node image files: %w", err)
	}
	for name, target := range links {
		out = append(out, entry{name: name, mode: 0o777, link: target})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

// dropped reports whether a base file must not reach the image: SSH host
// keys, which would make every node share the same identity, and the link
// that starts FRR at boot (only a BGP router runs it; lab enables it there).
func dropped(name string) bool {
	return strings.HasPrefix(name, "etc/ssh/ssh_host_") || name == "etc/systemd/system/multi-user.target.wants/frr.service"
}

// rewrite copies the tar stream base to w, leaving out dropped files and
// the files lab replaces, then appends lab's files (and any missing parent
// directories).
func rewrite(w io.Writer, base io.Reader, overlay []entry) error {
	replaced := make(map[string]bool, len(overlay))
	for _, e := range overlay {
		replaced[e.name] = true
	}
	seenDir := map[string]bool{}
	tr := tar.NewReader(base)
	tw := tar.NewWriter(w)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read root file system: %w", err)
		}
		name := cleanName(hdr.Name)
		if name == "" {
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			continue
		}
		if hdr.Typeflag == tar.TypeDir {
			seenDir[name] = true // the base's directory wins over ours
		} else if dropped(name) || replaced[name] {
			continue
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("write image: %w", err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return fmt.Errorf("write image: %s: %w", name, err)
		}
	}
	now := time.Unix(0, 0)
	for _, e := range overlay {
		for _, parent := range parents(e.name) {
			if seenDir[parent] {
				continue
			}
			seenDir[parent] = true
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "./" + parent + "/", Mode: 0o755, ModTime: now}); err != nil {
				return fmt.Errorf("write image: %w", err)
			}
		}
		var hdr *tar.Header
		switch {
		case e.dir:
			if seenDir[e.name] {
				continue
			}
			seenDir[e.name] = true
			hdr = &tar.Header{Typeflag: tar.TypeDir, Name: "./" + e.name + "/", Mode: e.mode}
		case e.link != "":
			hdr = &tar.Header{Typeflag: tar.TypeSymlink, Name: "./" + e.name, Linkname: e.link, Mode: e.mode}
		default:
			hdr = &tar.Header{Typeflag: tar.TypeReg, Name: "./" + e.name, Mode: e.mode, Size: int64(len(e.data))}
		}
		hdr.ModTime = now
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("write image: %w", err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return fmt.Errorf("write image: %w", err)
		}
	}
	return tw.Close()
}

// cleanName turns "./etc/ssh/" into "etc/ssh".
func cleanName(n string) string {
	n = path.Clean("/" + n)
	return strings.TrimPrefix(n, "/")
}

// parents returns the directories above name, outermost first.
func parents(name string) []string {
	var out []string
	for d := path.Dir(name); d != "." && d != "/"; d = path.Dir(d) {
		out = append([]string{d}, out...)
	}
	return out
}
