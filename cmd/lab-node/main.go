//go:build linux

// Command lab-node runs on every node of a lab with `cni: builtin`. It is one
// binary with several faces:
//
//	lab-node daemon      load the eBPF datapath, install the CNI plugin and
//	                     its config, keep routes to other nodes' pod CIDRs
//	lab-node stats       print the per-pod counters of the datapath
//	lab-node preflight   report, as JSON, what the kernel supports (exit 3:
//	                     something required is missing)
//	lab-node reset       remove all of the above from the node
//	(CNI_COMMAND set)    the CNI plugin, as a runtime calls it from /opt/cni/bin
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/labctl/lab/cmd/lab-node/internal/cniplugin"
)

func main() {
	// A runtime runs /opt/cni/bin/lab-node with CNI_COMMAND in the
	// environment and no arguments.
	if os.Getenv("CNI_COMMAND") != "" {
		cniplugin.Main()
		return
	}
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "daemon":
		err = runDaemon(os.Args[2:])
	case "stats":
		err = runStats(os.Args[2:])
	case "preflight":
		err = runPreflight(os.Args[2:])
	case "reset":
		err = runReset(os.Args[2:])
	case "-h", "--help", "help":
		usage()
		return
	default:
		usage()
		os.Exit(2)
	}
	if errors.Is(err, errMissing) {
		fmt.Fprintln(os.Stderr, "lab-node:", err)
		os.Exit(3)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "lab-node:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprint(os.Stderr, `usage: lab-node daemon|stats|preflight|reset [flags]
       (as a CNI plugin: CNI_COMMAND=ADD|DEL|CHECK|VERSION, config on stdin)
`)
}
