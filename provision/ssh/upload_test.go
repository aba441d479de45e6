package ssh_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/labctl/lab/internal/sshtest"
	"github.com/labctl/lab/provision/ssh"
)

// The nodes are processes on this machine, so a test reads uploaded files
// directly from the local filesystem.

func statOwner(t *testing.T, p string) (mode fs.FileMode, owner, group string) {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	u, err := user.LookupId(itoa(st.Uid))
	if err != nil {
		t.Fatal(err)
	}
	g, err := user.LookupGroupId(itoa(st.Gid))
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode(), u.Username, g.Name
}

func itoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }

// leftovers lists temporary upload files under dir.
func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	var found []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), ".lab-") {
			found = append(found, p)
		}
		return nil
	})
	return found
}

func TestUploadAtomicOwnedAndSkipped(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	n := e.h.StartNode(sshtest.NodeOptions{Name: "n1"})
	sudoer := e.h.User(true)
	e.h.Authorize(sudoer, e.key)
	tr := e.transport(t, e.config(t))
	dir := t.TempDir() // root-owned, 0700: only root can write there

	for _, u := range []string{"root", sudoer} {
		t.Run(u[:4], func(t *testing.T) {
			c := e.client(t, tr, n, u)
			base := filepath.Join(dir, u)
			files := []ssh.File{
				{Dst: base + "/etc/haproxy.cfg", Data: []byte("global\n"), Mode: 0o640, Owner: "root", Group: "daemon"},
				{Dst: base + "/bin/tool", Data: []byte("#!/bin/sh\necho tool\n"), Mode: 0o755},
				{Dst: base + "/owned-by-user", Data: []byte("x"), Owner: sudoer, Group: sudoer},
			}
			st, err := c.Upload(ctx(t), files...)
			if err != nil {
				t.Fatal(err)
			}
			if st.Written != 3 || st.Bytes != int64(len("global\n")+len("#!/bin/sh\necho tool\n")+1) {
				t.Errorf("first upload: %v", st)
			}
			for _, f := range files {
				got, err := os.ReadFile(f.Dst)
				if err != nil || !bytes.Equal(got, f.Data) {
					t.Errorf("%s: %q, %v", f.Dst, got, err)
				}
				mode, owner, group := statOwner(t, f.Dst)
				wantMode, wantOwner, wantGroup := f.Mode, f.Owner, f.Group
				if wantMode == 0 {
					wantMode = 0o644
				}
				if wantOwner == "" {
					wantOwner, wantGroup = "root", "root"
				}
				if mode != wantMode || owner != wantOwner || group != wantGroup {
					t.Errorf("%s: %v %s:%s, want %v %s:%s", f.Dst, mode, owner, group, wantMode, wantOwner, wantGroup)
				}
			}
			fi1, _ := os.Stat(files[0].Dst)

			// A re-run sends nothing and touches nothing.
			st, err = c.Upload(ctx(t), files...)
			if err != nil {
				t.Fatal(err)
			}
			if st.Bytes != 0 || st.Written != 0 || st.Fixed != 0 {
				t.Errorf("re-run: %v", st)
			}
			fi2, _ := os.Stat(files[0].Dst)
			if !os.SameFile(fi1, fi2) || !fi1.ModTime().Equal(fi2.ModTime()) {
				t.Errorf("re-run replaced %s", files[0].Dst)
			}

			// A changed mode is fixed without sending content.
			if err := os.Chmod(files[1].Dst, 0o600); err != nil {
				t.Fatal(err)
			}
			st, err = c.Upload(ctx(t), files...)
			if err != nil || st.Fixed != 1 || st.Bytes != 0 {
				t.Errorf("mode fix: %v, %v", st, err)
			}
			if mode, _, _ := statOwner(t, files[1].Dst); mode != 0o755 {
				t.Errorf("mode not fixed: %v", mode)
			}

			// Changed content replaces the file by rename (a new inode).
			files[0].Data = []byte("global\n  maxconn 100\n")
			if _, err := c.Upload(ctx(t), files...); err != nil {
				t.Fatal(err)
			}
			fi3, _ := os.Stat(files[0].Dst)
			if got, _ := os.ReadFile(files[0].Dst); !bytes.Equal(got, files[0].Data) || os.SameFile(fi1, fi3) {
				t.Errorf("changed file: %q, same inode %v", got, os.SameFile(fi1, fi3))
			}
			if l := leftovers(t, base); len(l) > 0 {
				t.Errorf("temporary files left: %v", l)
			}
		})
	}
}

func TestUploadTreeAndLargeFile(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	n := e.h.StartNode(sshtest.NodeOptions{Name: "n1"})
	c := e.client(t, e.transport(t, e.config(t)), n, "root")

	src := t.TempDir()
	big := make([]byte, 24<<20+12345) // many concurrent 128 KiB writes, a partial last one
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(src, "a/b"), 0o755))
	must(os.WriteFile(filepath.Join(src, "big.bin"), big, 0o600))
	must(os.WriteFile(filepath.Join(src, "a/b/script.sh"), []byte("echo hi\n"), 0o755))
	must(os.WriteFile(filepath.Join(src, "a/empty"), nil, 0o644))

	dst := filepath.Join(t.TempDir(), "tree")
	st, err := c.UploadTree(ctx(t), src, dst, "", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Log(st)
	if st.Written != 3 || st.Bytes != int64(len(big)+len("echo hi\n")) {
		t.Errorf("tree upload: %v", st)
	}
	got, err := os.ReadFile(filepath.Join(dst, "big.bin"))
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("big file differs (%d bytes, %v)", len(got), err)
	}
	if mode, _, _ := statOwner(t, filepath.Join(dst, "a/b/script.sh")); mode != 0o755 {
		t.Errorf("script mode %v", mode)
	}
	if fi, err := os.Stat(filepath.Join(dst, "a/empty")); err != nil || fi.Size() != 0 {
		t.Errorf("empty file: %v", err)
	}
	st, err = c.UploadTree(ctx(t), src, dst, "", "")
	if err != nil || st.Bytes != 0 || st.Written != 0 {
		t.Errorf("re-run: %v, %v", st, err)
	}
}

func TestCancelledUploadKeepsOldFile(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	n := e.h.StartNode(sshtest.NodeOptions{Name: "n1"})
	c := e.client(t, e.transport(t, e.config(t)), n, "root")
	dir := t.TempDir()
	dst := filepath.Join(dir, "file")
	if err := os.WriteFile(dst, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Cancel once the temporary file exists, mid-transfer.
	big := make([]byte, 256<<20)
	ctx2, cancel := context.WithCancel(ctx(t))
	defer cancel()
	go func() {
		defer cancel()
		for ctx2.Err() == nil && len(leftovers(t, dir)) == 0 {
			time.Sleep(time.Millisecond)
		}
	}()
	_, err := c.Upload(ctx2, ssh.File{Dst: dst, Data: big})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want a cancelled upload", err)
	}
	if got, _ := os.ReadFile(dst); string(got) != "old" {
		t.Errorf("destination changed by a cancelled upload: %d bytes", len(got))
	}
	if l := leftovers(t, dir); len(l) > 0 {
		t.Errorf("temporary files left: %v", l)
	}
}
