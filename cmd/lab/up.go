package main

import (
	"os"

	"github.com/labctl/lab/provision"
	"github.com/labctl/lab/provision/ssh"
	"github.com/spf13/cobra"
)

func newUpCommand(s *settings) *cobra.Command {
	var (
		dryRun bool
		skip   []string
		until  string
		limit  int
	)
	run := func(cmd *cobra.Command, args []string, only []string) error {
		lab, err := loadLab(cmd, s, args)
		if err != nil {
			return err
		}
		o, stop := options(s)
		defer stop()
		o.Limit, o.DryRun, o.Skip, o.Only, o.Until = limit, dryRun, skip, only, until
		o.Passphrase = ssh.TerminalPassphrase(os.Stdin)
		err = provision.Up(cmd.Context(), lab, o)
		return err
	}
	cmd := &cobra.Command{
		Use:   "up [FILE]",
		Short: "Create the nodes and bring the cluster to what the lab file describes",
		Long: `up runs its phases in order (see 'lab plan'): nodes, connect, facts, os,
packages, loadbalancer, vip, and on to kubeadm. Each phase checks every node
first and skips the work that is already done, so running up again is fast
and changes nothing; after a failure or an interruption it resumes.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return run(cmd, args, nil) },
	}
	f := cmd.PersistentFlags()
	f.BoolVar(&dryRun, "dry-run", false, "connect and check, then print per node what each phase would do (or that it is done); change nothing, take no lock")
	f.StringSliceVar(&skip, "skip-phases", nil, "phases not to run")
	f.StringVar(&until, "until", "", "stop after this phase")
	f.IntVar(&limit, "limit", 32, "nodes worked on at once in parallel phases")
	cmd.AddCommand(&cobra.Command{
		Use:   "phase NAME [FILE]",
		Short: "Run one phase of up again (with the phases it needs, such as connect and facts, first)",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			// The engine adds what the phase needs (Phase.Needs).
			return run(cmd, args[1:], []string{args[0]})
		},
	})
	return cmd
}
