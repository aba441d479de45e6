package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/labctl/lab/bpf/preflight"
	"github.com/labctl/lab/provision"
	"github.com/labctl/lab/provision/labfile"
	"github.com/spf13/cobra"
)

// baseOptions are the settings every command hands to provision.
func baseOptions(s *settings) provision.Options {
	return provision.Options{StateRoot: s.StateDir, DefaultKey: s.SSHKey, CacheDir: s.CacheDir, Userland: userland, Vagrantfile: s.Vagrantfile}
}

// options are baseOptions with the progress reporter; call the func when
// the command is done.
func options(s *settings) (provision.Options, func()) {
	o := baseOptions(s)
	rep, stop := reporter(s)
	o.Report = rep
	return o, stop
}

// confirm asks the user to type yes, unless --yes was given.
func confirm(cmd *cobra.Command, yes bool, what string, lab *labfile.Lab) error {
	fmt.Fprintf(cmd.ErrOrStderr(), "%s on lab %s, nodes:\n", what, lab.Metadata.Name)
	for _, n := range lab.Nodes {
		fmt.Fprintf(cmd.ErrOrStderr(), "  %-14s %-16s %s\n", n.Name, lab.NodeIP(&n), strings.Join(n.Roles, ","))
	}
	if yes {
		return nil
	}
	fmt.Fprint(cmd.ErrOrStderr(), "Type yes to go on: ")
	line, _ := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
	if strings.TrimSpace(line) != "yes" {
		return usageError{fmt.Errorf("not confirmed; nothing was changed (use --yes in scripts)")}
	}
	return nil
}

func newResetCommand(s *settings) *cobra.Command {
	var yes, dryRun bool
	cmd := &cobra.Command{
		Use:   "reset [FILE]",
		Short: "Wipe Kubernetes and everything lab installed from the nodes, then prove it",
		Long: `reset runs kubeadm reset and removes /etc/kubernetes, /var/lib/etcd, CNI
configs and binaries, eBPF pins, HAProxy and Keepalived configs and the VIP,
KUBE-* and CILIUM-* iptables and nftables rules and IPVS services, and what
Cilium's agent leaves besides: its tc and XDP programs, devices, mounts,
network namespaces, routing rules and tables, and routes into the pod
subnet. Then it audits every node and fails listing anything left. The
nodes stay.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			lab, err := loadLab(cmd, s, args)
			if err != nil {
				return err
			}
			if !dryRun {
				if err := confirm(cmd, yes, "reset will wipe Kubernetes", lab); err != nil {
					return err
				}
			}
			o, stop := options(s)
			defer stop()
			o.DryRun = dryRun
			return provision.Reset(cmd.Context(), lab, o)
		},
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print what would be removed")
	return cmd
}

func newDownCommand(s *settings) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "down [FILE]",
		Short: "Delete the lab's nodes and networks and its state directory",
		Long: `down deletes what the provider created for this lab (containers, volumes and
networks carrying the lab's label), and the lab's state directory (known_hosts,
secrets, kubeconfig). Static hosts are never deleted.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			lab, err := loadLab(cmd, s, args)
			if err != nil {
				return err
			}
			if err := confirm(cmd, yes, "down will delete the nodes", lab); err != nil {
				return err
			}
			o, stop := options(s)
			defer stop()
			return provision.Down(cmd.Context(), lab, o)
		},
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask")
	return cmd
}

func newStatusCommand(s *settings) *cobra.Command {
	return &cobra.Command{
		Use:   "status [FILE]",
		Short: "Show each node's reachability and completed phases, the VIP holder, API health and Cilium's agents",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			lab, err := loadLab(cmd, s, args)
			if err != nil {
				return err
			}
			st, err := provision.Status(cmd.Context(), lab, baseOptions(s))
			if err != nil {
				return err
			}
			if s.Output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintf(w, "lab %s, endpoint %s: API %s\n", st.Lab, st.Endpoint, st.API)
			if lab.ControlPlane.Mode == labfile.EndpointVIP {
				fmt.Fprintf(w, "VIP %s held by: %s\n", lab.ControlPlane.VIP, orNone(st.VIPHolders))
			}
			fmt.Fprintln(w, "NODE\tROLES\tADDRESS\tMACHINE\tSSH\tPHASES DONE")
			for _, n := range st.Nodes {
				reach := "ok"
				if !n.Reachable {
					reach = "down: " + n.Error
				}
				name := n.Name
				if n.VIP {
					name += " (VIP)"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", name, strings.Join(n.Roles, ","), n.Address, n.Machine, reach, orNone(n.Phases))
			}
			if err := w.Flush(); err != nil {
				return err
			}
			if lab.CNI.Type == labfile.CNICilium {
				return writeCiliumAgents(cmd.OutOrStdout(), st)
			}
			return nil
		},
	}
}

// writeCiliumAgents is the Cilium part of lab status: one row per node's
// agent, from the first control plane's kubectl.
func writeCiliumAgents(out io.Writer, st *provision.LabStatus) error {
	fmt.Fprintln(out)
	if st.CiliumError != "" {
		_, err := fmt.Fprintf(out, "Cilium agents: %s\n", st.CiliumError)
		return err
	}
	fmt.Fprintln(out, "Cilium agents (kubectl get pods -l k8s-app=cilium; cilium-dbg status --brief in each ready one):")
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NODE\tPOD\tREADY\tRESTARTS\tCILIUM-DBG STATUS")
	for _, a := range st.Cilium {
		pod := a.Pod
		if pod == "" {
			pod = "-"
		}
		fmt.Fprintf(w, "%s\t%s\t%t\t%d\t%s\n", a.Node, pod, a.Ready, a.Restarts, a.Status)
	}
	return w.Flush()
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ",")
}

func newDoctorCommand(s *settings) *cobra.Command {
	return &cobra.Command{
		Use:   "doctor [FILE]",
		Short: "Check every node's kernel for what the lab's pod network needs",
		Long: `doctor pushes lab-node to every cluster node and runs its kernel check for the
lab's CNI: eBPF program and map types, the helpers the datapath calls
(redirect_neigh, redirect_peer, fib_lookup), TCX, BTF, and for Cilium its
minimum kernel. It prints one row per check and node; exit 1 when a node
lacks something required.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			lab, err := loadLab(cmd, s, args)
			if err != nil {
				return err
			}
			o, stop := options(s)
			reports, err := provision.Doctor(cmd.Context(), lab, o)
			stop()
			if s.Output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if encErr := enc.Encode(reports); encErr != nil {
					return encErr
				}
			} else if len(reports) > 0 {
				if werr := preflight.WriteTable(cmd.OutOrStdout(), reports); werr != nil {
					return werr
				}
			}
			return err
		},
	}
}
