package main

import (
	"errors"
	"os"
	"os/exec"
)

// runSSH runs ssh as a child, since Windows cannot replace a process with
// another, and exits with its status once the session ends. Console
// Ctrl-C events reach ssh directly; lab only waits.
func runSSH(path string, argv []string) error {
	cmd := exec.Command(path, argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		os.Exit(exit.ExitCode())
	}
	if err != nil {
		return err
	}
	os.Exit(0)
	return nil
}
