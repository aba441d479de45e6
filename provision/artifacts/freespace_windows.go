//go:build windows

package artifacts

import "golang.org/x/sys/windows"

// freeSpace is how many bytes the calling user may still write to the
// volume holding dir (quotas included).
func freeSpace(dir string) (uint64, error) {
	p, err := windows.UTF16PtrFromString(dir)
	if err != nil {
		return 0, err
	}
	var free uint64
	if err := windows.GetDiskFreeSpaceEx(p, &free, nil, nil); err != nil {
		return 0, err
	}
	return free, nil
}
