//go:build unix

package filelock

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// flock(2) locks belong to the open file description, which is what the
// package promises: closing f, or the holder's death, releases them.

func lock(f *os.File) error {
	return flock(f, unix.LOCK_EX)
}

func tryLock(f *os.File) (bool, error) {
	err := flock(f, unix.LOCK_EX|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return false, nil
	}
	return err == nil, err
}

func unlock(f *os.File) error {
	return flock(f, unix.LOCK_UN)
}

// flock retries when a signal interrupts a wait for the lock.
func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}
