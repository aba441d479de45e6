//go:build unix

package artifacts

import (
	"fmt"
	"io/fs"

	"golang.org/x/sys/unix"
)

// fingerprint is what stat says of a file, as one string: size, mtime,
// ctime, inode and device. The ctime is what makes it trustworthy: no
// write, rename or chmod can leave it as it was, even one that puts the
// mtime back.
func fingerprint(p string) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return "", &fs.PathError{Op: "stat", Path: p, Err: err}
	}
	return fmt.Sprintf("%d %d.%09d %d.%09d %d %d", st.Size, st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec, st.Ino, st.Dev), nil
}
