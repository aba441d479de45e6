//go:build linux

package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/labctl/lab/bpf"
	"github.com/labctl/lab/cmd/lab-node/internal/cniplugin"
	"github.com/labctl/lab/cmd/lab-node/internal/daemon"
)

// nodeFlags are the locations shared by `daemon` and `reset`.
func nodeFlags(fs *flag.FlagSet, cfg *daemon.Config) {
	fs.StringVar(&cfg.BPFRoot, "bpf-root", bpf.DefaultRoot, "bpffs directory to pin the datapath under")
	fs.StringVar(&cfg.CNIConfDir, "cni-conf-dir", "/etc/cni/net.d", "where to write the CNI network config")
	fs.StringVar(&cfg.CNIBinDir, "cni-bin-dir", "/opt/cni/bin", "where to install the CNI plugin")
	fs.StringVar(&cfg.StateDir, "state-dir", cniplugin.DefaultStateDir, "IPAM state directory")
}

// runReset removes lab-node's pod network from the node.
func runReset(args []string) error {
	fs := flag.NewFlagSet("lab-node reset", flag.ContinueOnError)
	var cfg daemon.Config
	nodeFlags(fs, &cfg)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := daemon.Reset(context.Background(), cfg); err != nil {
		return fmt.Errorf("reset: %w", err)
	}
	return nil
}

func runDaemon(args []string) error {
	fs := flag.NewFlagSet("lab-node daemon", flag.ContinueOnError)
	host, _ := os.Hostname()
	var (
		cfg        daemon.Config
		kubeconfig = fs.String("kubeconfig", "/etc/lab/lab-node.conf", "kubeconfig to read Node objects with (lab writes this one, for the ServiceAccount kube-system/lab-node)")
		nodesFile  = fs.String("nodes-file", "", "read the node list from this JSON file instead of the API server")
		attach     = fs.String("attach-mode", "auto", "how to hook programs: auto, tcx or clsact")
		debug      = fs.Bool("debug", false, "log debug messages")
	)
	fs.StringVar(&cfg.NodeName, "node-name", host, "this node's name in the cluster")
	fs.StringVar(&cfg.Uplink, "uplink", "", "the node's network interface (default: the one with the node's InternalIP)")
	nodeFlags(fs, &cfg)
	fs.IntVar(&cfg.MTU, "mtu", 0, "pod MTU (default: the uplink's)")
	fs.StringVar(&cfg.MetricsAddr, "metrics-addr", "127.0.0.1:9965", "Prometheus /metrics address; empty turns it off")
	fs.BoolVar(&cfg.Masquerade, "masquerade", true, "masquerade pod traffic to non-pod destinations (iptables)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	mode, err := bpf.ParseAttachMode(*attach)
	if err != nil {
		return err
	}
	cfg.AttachMode = mode
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if *nodesFile != "" {
		cfg.Nodes = daemon.FileSource{Path: *nodesFile}
	} else {
		cfg.Nodes = daemon.APISource{Kubeconfig: *kubeconfig, Log: cfg.Log}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := daemon.Run(ctx, cfg); err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	return nil
}
