//go:build linux

package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/labctl/lab/bpf"
	"github.com/labctl/lab/cmd/lab-node/internal/cniplugin"
	"github.com/labctl/lab/cmd/lab-node/internal/daemon"
)

// runStats prints every local pod's counters, read from the pinned maps.
func runStats(args []string) error {
	fs := flag.NewFlagSet("lab-node stats", flag.ContinueOnError)
	root := fs.String("bpf-root", bpf.DefaultRoot, "bpffs directory the datapath is pinned under")
	stateDir := fs.String("state-dir", cniplugin.DefaultStateDir, "IPAM state directory (for pod names)")
	asJSON := fs.Bool("json", false, "print JSON")
	metrics := fs.Bool("prometheus", false, "print the Prometheus text format")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dp, err := bpf.Open(*root, bpf.AttachAuto)
	if err != nil {
		return err
	}
	defer dp.Close()
	stats, err := daemon.ReadStats(dp, *stateDir)
	if err != nil {
		return err
	}
	switch {
	case *asJSON:
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(stats)
	case *metrics:
		return daemon.WriteMetrics(os.Stdout, stats)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "IP\tPOD\tIFINDEX\tRX PACKETS\tRX BYTES\tTX PACKETS\tTX BYTES\t")
	for _, s := range stats {
		fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t\n", s.IP, s.Pod, s.Ifindex, s.RxPackets, s.RxBytes, s.TxPackets, s.TxBytes)
	}
	return w.Flush()
}
