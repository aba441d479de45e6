// Command pause is the sandbox ("pause") container of a pod: it holds the
// pod's namespaces open, reaps the zombies of processes that share its PID
// namespace, and exits cleanly when the runtime stops the sandbox.
//
// lab builds it into the pause image of the `build` artifact source, for
// machines with no image registry.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// version is the pause image tag this program stands for.
var version = "dev"

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "-v" || os.Args[1] == "--version") {
		fmt.Println("pause", version, "(lab)")
		return
	}
	// Until Notify, a SIGTERM takes the Go runtime's default path, which
	// for PID 1 (whose default-action signals the kernel drops) ends in
	// exit status 2: catch the signals before anything else.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "pause: warning: not running as PID 1")
	}
	// One line on standard output, once the signals are caught, says the sandbox is
	// up (tests wait for it before they stop the container).
	fmt.Println("pause", version, "holding the pod's namespaces")
	for s := range sigs {
		switch s {
		case syscall.SIGCHLD:
			reap()
		default:
			fmt.Fprintf(os.Stderr, "pause: shutting down, got %v\n", s)
			os.Exit(0)
		}
	}
}

// reap collects every exited child without blocking: signals coalesce, so
// one SIGCHLD may stand for several children.
func reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
