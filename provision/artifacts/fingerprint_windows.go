//go:build windows

package artifacts

import (
	"fmt"
	"os"

	"golang.org/x/sys/windows"
)

// fingerprint is what Windows says of a file, as one string: size, last
// write time, volume serial number and file index (the inode's
// counterpart). Windows keeps no ctime that a plain stat returns, so a
// writer that deliberately puts the last write time back goes unnoticed;
// anything else that changes a blob, a write or a file renamed over it,
// changes the write time or the file index and the blob is hashed again.
func fingerprint(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var fi windows.ByHandleFileInformation
	if err := windows.GetFileInformationByHandle(windows.Handle(f.Fd()), &fi); err != nil {
		return "", &os.PathError{Op: "GetFileInformationByHandle", Path: p, Err: err}
	}
	size := int64(fi.FileSizeHigh)<<32 | int64(fi.FileSizeLow)
	mtime := int64(fi.LastWriteTime.HighDateTime)<<32 | int64(fi.LastWriteTime.LowDateTime)
	return fmt.Sprintf("%d %d %x %x:%x", size, mtime, fi.VolumeSerialNumber, fi.FileIndexHigh, fi.FileIndexLow), nil
}
