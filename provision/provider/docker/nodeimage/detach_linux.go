package nodeimage

import "golang.org/x/sys/unix"

// detach lazily unmounts the mount at mountpoint: it disappears from the
// tree at once, even while something still uses it.
func detach(mountpoint string) error {
	return unix.Unmount(mountpoint, unix.MNT_DETACH)
}
