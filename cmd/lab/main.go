// Command lab turns one YAML lab file into a highly available Kubernetes
// cluster on VirtualBox VMs, container nodes or existing hosts.
//
// Exit codes: 0 success, 1 the lab or an operation failed, 2 bad usage.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCommand().ExecuteContext(ctx)
	stop()
	if err != nil {
		var u usageError
		if !errors.As(err, &u) {
			var silent silentError
			if !errors.As(err, &silent) {
				fmt.Fprintln(os.Stderr, "lab:", err)
			}
			os.Exit(1)
		}
		fmt.Fprintln(os.Stderr, "lab:", err)
		os.Exit(2)
	}
}

// usageError marks mistakes in how lab was called (exit code 2).
type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

// silentError is a failure whose details were already printed (exit code 1).
type silentError struct{ error }

func (s silentError) Unwrap() error { return s.error }
