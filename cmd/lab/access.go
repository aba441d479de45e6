package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/labctl/lab/internal/atomicfile"
	"github.com/labctl/lab/provision"
	"github.com/spf13/cobra"
)

func newSSHCommand(s *settings) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "ssh NODE [-- COMMAND...]",
		Short: "Open a shell on a node, or run one command there",
		Long: `ssh logs into a node with OpenSSH using the lab's keys and the lab's own
known_hosts (the node's key is verified by lab first, under the lab's policy).
With a command after --, it runs that command and exits with its status.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			lab, err := loadLab(cmd, s, fileArg(file))
			if err != nil {
				return err
			}
			argv, err := provision.SSHCommand(cmd.Context(), lab, baseOptions(s), args[0], args[1:])
			if err != nil {
				return err
			}
			path, err := exec.LookPath("ssh")
			if err != nil {
				return fmt.Errorf("lab ssh needs OpenSSH's ssh client on PATH: %w", err)
			}
			if s.Verbose {
				fmt.Fprintln(os.Stderr, strings.Join(argv, " "))
			}
			return runSSH(path, argv)
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "lab file (default ./lab.yaml)")
	return cmd
}

func fileArg(file string) []string {
	if file == "" {
		return nil
	}
	return []string{file}
}

func newKubeconfigCommand(s *settings) *cobra.Command {
	var merge, use bool
	cmd := &cobra.Command{
		Use:   "kubeconfig [FILE]",
		Short: "Print the lab's admin kubeconfig, or merge it into ~/.kube/config",
		Long: `kubeconfig prints the admin kubeconfig lab up wrote (its server is the VIP).
With --merge it is added to the first file of $KUBECONFIG (default
~/.kube/config) as a cluster, user and context named after the lab; --use
also makes that context the current one.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			lab, err := loadLab(cmd, s, args)
			if err != nil {
				return err
			}
			data, err := provision.Kubeconfig(lab, baseOptions(s))
			if err != nil {
				return err
			}
			if !merge {
				_, err = cmd.OutOrStdout().Write(data)
				return err
			}
			target := filepath.SplitList(os.Getenv("KUBECONFIG"))
			path := ""
			if len(target) > 0 && target[0] != "" {
				path = target[0]
			} else {
				home, err := os.UserHomeDir()
				if err != nil {
					return err
				}
				path = filepath.Join(home, ".kube", "config")
			}
			existing, err := os.ReadFile(path)
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
			merged, err := provision.MergeKubeconfig(existing, data, lab.Metadata.Name, use)
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				return err
			}
			if err := atomicfile.WriteFile(path, merged, 0o600); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "merged lab %s into %s as context %q\n", lab.Metadata.Name, path, lab.Metadata.Name)
			return nil
		},
	}
	cmd.Flags().BoolVar(&merge, "merge", false, "merge into $KUBECONFIG or ~/.kube/config instead of printing")
	cmd.Flags().BoolVar(&use, "use", false, "with --merge, switch the current context to the lab")
	return cmd
}

func newLogsCommand(s *settings) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "logs [FILE]",
		Short: "Collect every node's service logs and lab's journal into one archive",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			lab, err := loadLab(cmd, s, args)
			if err != nil {
				return err
			}
			if out == "" {
				out = fmt.Sprintf("lab-logs-%s-%s.tar.gz", lab.Metadata.Name, time.Now().UTC().Format("20060102T150405Z"))
			}
			n, err := provision.Logs(cmd.Context(), lab, baseOptions(s), out)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (%d files)\n", out, n)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "archive to write (default lab-logs-NAME-TIME.tar.gz)")
	return cmd
}
