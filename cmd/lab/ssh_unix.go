//go:build !windows

package main

import (
	"os"
	"syscall"
)

// runSSH replaces lab with ssh: the terminal, signals and exit status all
// belong to the session from here on.
func runSSH(path string, argv []string) error {
	return syscall.Exec(path, argv, os.Environ())
}
