//go:build linux

package main

import (
	"encoding/json"
	"errors"
	"flag"
	"os"

	"github.com/labctl/lab/bpf/preflight"
)

// errMissing makes lab-node exit 3: the report is printed, and the kernel
// lacks something required.
var errMissing = errors.New("the kernel lacks what the datapath needs")

// runPreflight prints the kernel report as JSON on stdout.
func runPreflight(args []string) error {
	fs := flag.NewFlagSet("lab-node preflight", flag.ContinueOnError)
	host, _ := os.Hostname()
	opts := preflight.Options{}
	fs.StringVar(&opts.Node, "node-name", host, "node name to put in the report")
	fs.StringVar(&opts.Datapath, "cni", preflight.Builtin, "datapath to check for: builtin or cilium")
	fs.StringVar(&opts.CiliumVersion, "cilium-version", "", "Cilium version, for its minimum kernel (with --cni cilium)")
	fs.BoolVar(&opts.Container, "container", false, "the node is a container (with --cni cilium: report whether it has cgroup v2)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	r, err := preflight.Probe(opts)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return err
	}
	if !r.OK {
		return errMissing
	}
	return nil
}
