package ssh

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pkg/sftp"
)

// File is one file to put on a node.
type File struct {
	// Dst is the absolute remote path.
	Dst string
	// Src is a local file to send; when empty, Data is sent.
	Src  string
	Data []byte
	// Mode holds the permission bits (and setuid, setgid, sticky);
	// default 0644.
	Mode fs.FileMode
	// Owner and Group name the remote owner; default root.
	Owner, Group string
}

// UploadStats says what an upload did.
type UploadStats struct {
	Files   int           // files asked for
	Written int           // files whose content was sent
	Fixed   int           // files with the right content whose mode or owner was corrected
	Bytes   int64         // content bytes sent
	Elapsed time.Duration // the whole upload, checks included
}

// BytesPerSecond is the upload's throughput.
func (s UploadStats) BytesPerSecond() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Bytes) / s.Elapsed.Seconds()
}

func (s UploadStats) String() string {
	return fmt.Sprintf("%d files: %d written, %d fixed, %d unchanged; %.1f MiB in %v (%.1f MiB/s)",
		s.Files, s.Written, s.Fixed, s.Files-s.Written-s.Fixed, float64(s.Bytes)/(1<<20),
		s.Elapsed.Round(time.Millisecond), s.BytesPerSecond()/(1<<20))
}

// upload is a File being uploaded.
type upload struct {
	File
	size  int64
	sum   string
	state string // from the check: new, same, meta
	tmp   string // remote temporary file
}

// batch bounds the files handled by one remote command (its length).
const batch = 200

// checkScript reports, for each file (path size sha256 mode owner group),
// "same", "meta" (content right, mode or owner not) or "new", creating
// missing parent directories. Hashing happens only when sizes match.
//
//go:embed check.sh
var checkScript string

// finishScript sets owner and mode of each uploaded temporary file and
// renames it over its destination (rename(2) in the same directory: readers
// see the old or the new file), or fixes owner and mode in place ("-").
//
//go:embed finish.sh
var finishScript string

// sftpServers are where distributions install OpenSSH's sftp-server; a
// non-root user runs it through sudo to write as root.
const sftpServers = "/usr/lib/openssh/sftp-server /usr/libexec/openssh/sftp-server /usr/lib/ssh/sftp-server /usr/libexec/sftp-server /usr/lib/sftp-server"

// sftpScript runs the first of its arguments (sftpServers) that is there.
//
//go:embed sftp.sh
var sftpScript string

// Upload puts files on the node atomically (a temporary file in the same
// directory, fsync, rename) with their mode and owner. Files whose remote
// sha256 already matches are not sent; if only their mode or owner differ
// those are corrected. Large files are sent with concurrent SFTP writes.
func (c *Client) Upload(ctx context.Context, files ...File) (UploadStats, error) {
	start := time.Now()
	stats := UploadStats{Files: len(files)}
	ups := make([]*upload, len(files))
	for i, f := range files {
		u, err := c.t.prepare(f)
		if err != nil {
			return stats, fmt.Errorf("%s: upload: %w", c.target, err)
		}
		ups[i] = u
	}
	for i := 0; i < len(ups); i += batch {
		if err := c.check(ctx, ups[i:min(i+batch, len(ups))]); err != nil {
			return stats, err
		}
	}
	var send []*upload
	for _, u := range ups {
		if u.state == "new" {
			send = append(send, u)
		}
	}
	if len(send) > 0 {
		n, err := c.send(ctx, send)
		stats.Bytes = n
		if err != nil {
			c.removeTemps(ctx, send)
			stats.Elapsed = time.Since(start)
			return stats, err
		}
	}
	var finish []*upload
	for _, u := range ups {
		switch u.state {
		case "new":
			stats.Written++
			finish = append(finish, u)
		case "meta":
			stats.Fixed++
			finish = append(finish, u)
		}
	}
	for i := 0; i < len(finish); i += batch {
		var args []string
		for _, u := range finish[i:min(i+batch, len(finish))] {
			tmp := u.tmp
			if u.state == "meta" {
				tmp = "-"
			}
			args = append(args, tmp, u.Dst, modeString(u.Mode), u.Owner, u.Group)
		}
		if err := c.Run(ctx, script(finishScript, args)); err != nil {
			c.removeTemps(ctx, send)
			stats.Elapsed = time.Since(start)
			return stats, fmt.Errorf("%s: upload: %w", c.target, err)
		}
	}
	stats.Elapsed = time.Since(start)
	return stats, nil
}

// UploadTree uploads every regular file below the local directory src to
// the remote directory dst, keeping relative paths and permission bits,
// owned by owner and group (default root).
func (c *Client) UploadTree(ctx context.Context, src, dst, owner, group string) (UploadStats, error) {
	var files []File
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s: only regular files and directories can be uploaded", p)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		mode := info.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
		files = append(files, File{Src: p, Dst: path.Join(dst, filepath.ToSlash(rel)), Mode: mode, Owner: owner, Group: group})
		return nil
	})
	if err != nil {
		return UploadStats{}, fmt.Errorf("%s: upload %s: %w", c.target, src, err)
	}
	return c.Upload(ctx, files...)
}

func (t *Transport) prepare(f File) (*upload, error) {
	if !path.IsAbs(f.Dst) || path.Clean(f.Dst) != f.Dst || f.Dst == "/" {
		return nil, fmt.Errorf("destination %q is not a clean absolute file path", f.Dst)
	}
	u := &upload{File: f}
	if u.Mode == 0 {
		u.Mode = 0o644
	}
	if u.Owner == "" {
		u.Owner = "root"
	}
	if u.Group == "" {
		u.Group = "root"
	}
	if f.Src == "" {
		sum := sha256.Sum256(f.Data)
		u.sum, u.size = hex.EncodeToString(sum[:]), int64(len(f.Data))
		return u, nil
	}
	var err error
	u.sum, u.size, err = t.sums.sum(f.Src)
	return u, err
}

// sumCache remembers the sha256 of local files, so that a file sent to many
// nodes at once is read and hashed once, not once per node.
type sumCache struct {
	mu sync.Mutex
	m  map[sumKey]*sumEntry
}

type sumKey struct {
	path  string
	size  int64
	mtime int64
}

type sumEntry struct {
	once sync.Once
	sum  string
	size int64
	err  error
}

func (c *sumCache) sum(file string) (string, int64, error) {
	fi, err := os.Stat(file)
	if err != nil {
		return "", 0, err
	}
	k := sumKey{file, fi.Size(), fi.ModTime().UnixNano()}
	c.mu.Lock()
	if c.m == nil {
		c.m = map[sumKey]*sumEntry{}
	}
	e := c.m[k]
	if e == nil {
		e = &sumEntry{}
		c.m[k] = e
	}
	c.mu.Unlock()
	e.once.Do(func() {
		r, err := os.Open(file)
		if err != nil {
			e.err = err
			return
		}
		defer r.Close()
		h := sha256.New()
		e.size, e.err = io.Copy(h, r)
		e.sum = hex.EncodeToString(h.Sum(nil))
	})
	if e.err != nil {
		c.mu.Lock()
		delete(c.m, k) // let a later upload try again
		c.mu.Unlock()
	}
	return e.sum, e.size, e.err
}

// modeString is the mode as stat's %a prints it and chmod reads it.
func modeString(m fs.FileMode) string {
	bits := uint64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		bits |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		bits |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		bits |= 0o1000
	}
	return strconv.FormatUint(bits, 8)
}

// script is a command line running the shell script s with args.
func script(s string, args []string) string {
	var b strings.Builder
	b.WriteString("sh -c ")
	b.WriteString(quote(s))
	b.WriteString(" lab")
	for _, a := range args {
		b.WriteByte(' ')
		b.WriteString(quote(a))
	}
	return b.String()
}

// check asks the node which files need sending.
func (c *Client) check(ctx context.Context, ups []*upload) error {
	var args []string
	for _, u := range ups {
		args = append(args, u.Dst, strconv.FormatInt(u.size, 10), u.sum, modeString(u.Mode), u.Owner, u.Group)
	}
	var out bytes.Buffer
	if err := c.Exec(ctx, Cmd{Command: script(checkScript, args), Stdout: &out}); err != nil {
		return fmt.Errorf("%s: upload: checking remote files: %w", c.target, err)
	}
	states := strings.Fields(out.String())
	if len(states) != len(ups) {
		return fmt.Errorf("%s: upload: checking remote files: %d answers for %d files", c.target, len(states), len(ups))
	}
	for i, u := range ups {
		u.state = states[i]
	}
	return nil
}

// send writes the files' content to temporary files next to their
// destinations, each synced to disk, and returns the bytes sent.
func (c *Client) send(ctx context.Context, ups []*upload) (int64, error) {
	sess, _, release, err := c.session(ctx)
	if err != nil {
		return 0, err
	}
	defer release()
	defer sess.Close()
	w, err := sess.StdinPipe()
	if err != nil {
		return 0, err
	}
	r, err := sess.StdoutPipe()
	if err != nil {
		return 0, err
	}
	var stderr tail
	stderr.n = 5
	sess.Stderr = &lineWriter{node: c.target.Name, stream: "stderr", secrets: c.t.secrets, tail: &stderr}
	if c.root() {
		err = sess.RequestSubsystem("sftp")
	} else {
		// sudo -n was checked by the Exec of the check script.
		err = sess.Start("sudo -n " + script(sftpScript, strings.Fields(sftpServers)))
	}
	if err != nil {
		return 0, fmt.Errorf("%s: starting sftp: %w", c.target, err)
	}
	client, err := sftp.NewClientPipe(r, w,
		sftp.UseConcurrentWrites(true),
		sftp.MaxPacketUnchecked(sftpPacket),
		sftp.MaxConcurrentRequestsPerFile(64))
	if err != nil {
		return 0, fmt.Errorf("%s: starting sftp: %w %s", c.target, err, strings.Join(stderr.get(), "; "))
	}
	defer client.Close()
	// Cancellation interrupts transfers by closing the session.
	stop := context.AfterFunc(ctx, func() { client.Close(); sess.Close() })
	defer stop()

	var total int64
	for _, u := range ups {
		n, err := c.sendOne(client, u)
		total += n
		if err != nil {
			if ctx.Err() != nil {
				err = fmt.Errorf("%w (%v)", context.Cause(ctx), err)
			}
			return total, fmt.Errorf("%s: upload %s: %w", c.target, u.Dst, err)
		}
	}
	return total, nil
}

// sftpPacket is the SFTP write size: OpenSSH's sftp-server accepts
// messages up to 256 KiB, so writes of 128 KiB halve the round trips of
// the 32 KiB default without nearing that limit.
const sftpPacket = 128 << 10

func (c *Client) sendOne(client *sftp.Client, u *upload) (int64, error) {
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return 0, err
	}
	dir, base := path.Split(u.Dst)
	u.tmp = dir + "." + base + ".lab-" + hex.EncodeToString(rnd[:])
	f, err := client.OpenFile(u.tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		u.tmp = ""
		return 0, err
	}
	// sftp-server creates the file with the umask's mode (0644, usually)
	// and finishScript sets the real one only after the content is in:
	// a private file (a kubeconfig with a token, kubeadm's configs) must
	// be unreadable to others before its content arrives.
	if u.Mode.Perm()&0o077 == 0 {
		if err := f.Chmod(0o600); err != nil {
			f.Close()
			return 0, fmt.Errorf("making the temporary file private: %w", err)
		}
	}
	var src io.Reader = bytes.NewReader(u.Data)
	if u.Src != "" {
		lf, err := os.Open(u.Src)
		if err != nil {
			f.Close()
			return 0, err
		}
		defer lf.Close()
		src = lf
	}
	n, err := f.ReadFrom(src)
	if err == nil && n != u.size {
		err = fmt.Errorf("%s changed while uploading (%d bytes, expected %d)", u.Src, n, u.size)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return n, err
}

// removeTemps deletes temporary files left by a failed upload, even when
// ctx has ended.
func (c *Client) removeTemps(ctx context.Context, ups []*upload) {
	var tmps []string
	for _, u := range ups {
		if u.tmp != "" {
			tmps = append(tmps, u.tmp)
		}
	}
	if len(tmps) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := c.Run(ctx, script(`rm -f -- "$@"`, tmps)); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		c.t.logf("%s: removing temporary upload files: %v", c.target, err)
	}
}
