// Package filelock takes exclusive locks on files, so that lab commands
// (and the lab-node processes a runtime starts) that share a directory take
// turns. A lock belongs to the open file: closing the file, or the death of
// the process holding it, releases it, so a killed holder never leaves a
// lock behind.
//
// The locks are advisory on every system: they exclude other lockers, not
// readers or writers of the file's content.
package filelock

import (
	"fmt"
	"io/fs"
	"os"
)

// Lock blocks until f holds an exclusive lock.
func Lock(f *os.File) error {
	if err := lock(f); err != nil {
		return &fs.PathError{Op: "lock", Path: f.Name(), Err: err}
	}
	return nil
}

// TryLock takes an exclusive lock on f if no one else holds one, without
// waiting. It reports false, and no error, when another holder has it.
func TryLock(f *os.File) (bool, error) {
	ok, err := tryLock(f)
	if err != nil {
		return false, &fs.PathError{Op: "lock", Path: f.Name(), Err: err}
	}
	return ok, nil
}

// Unlock releases f's lock; f stays open.
func Unlock(f *os.File) error {
	if err := unlock(f); err != nil {
		return &fs.PathError{Op: "unlock", Path: f.Name(), Err: err}
	}
	return nil
}

// Open opens path read-write, creating it with perm if needed, and waits
// for an exclusive lock on it: the usual way to guard a directory is to
// hold a lock file inside it. Closing the returned file releases the lock.
func Open(path string, perm fs.FileMode) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, perm)
	if err != nil {
		return nil, err
	}
	if err := Lock(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("filelock: %w", err)
	}
	return f, nil
}
