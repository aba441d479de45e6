//go:build linux

package main

import "errors"

func runPreflight(args []string) error {
	return errors.New("preflight: not implemented yet")
}
