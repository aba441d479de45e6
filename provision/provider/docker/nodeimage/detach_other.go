//go:build !linux

package nodeimage

// detach is never reached on other systems, where Build refuses to start.
func detach(string) error { return ErrNeedsLinux }
