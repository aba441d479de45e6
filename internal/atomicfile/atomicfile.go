// Package atomicfile replaces files whole: a reader, or the machine after a
// crash, finds a file's old content or its new content, never a mix of the
// two or a file cut short.
//
// The new content is written to a temporary file in the destination's
// directory (a rename is atomic only within one file system), synced to
// disk and renamed over the destination; then the directory is synced, so
// that the rename itself is on disk. Without the first sync a crash soon
// after the rename can leave an empty file where the old one was.
package atomicfile

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// WriteFile writes data to path with exactly the permissions perm (the
// umask does not apply, so a 0600 file is 0600 whatever the caller's
// umask), replacing any file there. path's directory must exist.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	f, err := Create(path, perm)
	if err != nil {
		return err
	}
	defer f.Discard()
	if _, err := f.Write(data); err != nil {
		return err
	}
	return f.Commit()
}

// File is the new content of a path while it is being written. Nothing
// changes at the path until Commit.
type File struct {
	tmp       *os.File
	path      string
	committed bool
}

// Create starts replacing path: it creates a temporary file beside it with
// the permissions perm, set before anything is written, so content meant
// for a 0600 file is never readable by others. Defer Discard right after
// Create; it removes the temporary file if Commit is never reached.
func Create(path string, perm fs.FileMode) (*File, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("atomicfile: %w", err)
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("atomicfile: %w", err)
	}
	return &File{tmp: tmp, path: path}, nil
}

// Write writes to the temporary file.
func (f *File) Write(p []byte) (int, error) {
	n, err := f.tmp.Write(p)
	if err != nil {
		err = fmt.Errorf("atomicfile: %w", err)
	}
	return n, err
}

// Commit syncs the temporary file, closes it and renames it to the path.
func (f *File) Commit() error {
	if err := f.tmp.Sync(); err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	if err := f.tmp.Close(); err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	if err := rename(f.tmp.Name(), f.path); err != nil {
		return err
	}
	f.committed = true
	return nil
}

// Discard closes and removes the temporary file unless Commit succeeded.
// It is safe to call more than once.
func (f *File) Discard() {
	if f.committed {
		return
	}
	f.tmp.Close() // may already be closed by a failed Commit
	os.Remove(f.tmp.Name())
}

// Replace puts the file tmp, written by something that takes a path rather
// than an io.Writer (a downloader, tar), in place of path as Commit would:
// tmp is synced and renamed to path. tmp must be in path's directory and
// already have its permissions.
func Replace(tmp, path string) error {
	f, err := os.OpenFile(tmp, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	return rename(tmp, path)
}

// rename renames tmp to path and syncs their directory. The directory
// sync is best effort: the content is on disk already, and some file
// systems (shared folders of VMs, some network file systems) refuse to
// sync a directory, as does Windows, where there is no such call; there
// the rename is as durable as the file system makes it.
func rename(tmp, path string) error {
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	if runtime.GOOS == "windows" {
		return nil
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
