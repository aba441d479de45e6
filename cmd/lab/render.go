package main

import (
	"encoding/json"
	"fmt"

	"github.com/labctl/lab/provision"
	"github.com/spf13/cobra"
)

func newRenderCommand(s *settings) *cobra.Command {
	var (
		out   string
		nodes []string
	)
	cmd := &cobra.Command{
		Use:   "render [FILE]",
		Short: "Show the exact files each node would receive",
		Long: `render builds every file lab up writes on each node, grouped by the phase
that installs it: sysctl, module and /etc/hosts files (os), containerd and
crictl configs (packages), haproxy.cfg, keepalived.conf and its check script
(loadbalancer), the kubelet's units (kubernetes), the kubeadm configurations,
checked by kubeadm's own validation (init, join-control-plane, join-worker),
and the pod network's files (cni). Credentials only 'lab up' learns (the
bootstrap token, the certificate key, the CA hash, lab-node's token) are shown
as placeholders marked PLACEHOLDER or made of zeros. Programs (kubeadm,
kubelet, lab-node, helm) are not shown. With --out DIR each node gets a
folder.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			lab, err := loadLab(cmd, s, args)
			if err != nil {
				return err
			}
			rendered, err := provision.Render(lab, nodes)
			if err != nil {
				return err
			}
			if out != "" {
				if err := provision.WriteRendered(out, rendered); err != nil {
					return err
				}
				n := 0
				for _, r := range rendered {
					n += r.Files()
				}
				fmt.Fprintf(cmd.OutOrStdout(), "wrote %d files for %d nodes under %s\n", n, len(rendered), out)
				return nil
			}
			if s.Output == "json" {
				type file struct {
					Node    string `json:"node"`
					Phase   string `json:"phase"`
					Path    string `json:"path"`
					Mode    string `json:"mode"`
					Content string `json:"content"`
				}
				var files []file
				for _, r := range rendered {
					for _, g := range r.Groups {
						for _, f := range g.Files {
							files = append(files, file{r.Node, g.Phase, f.Path, fmt.Sprintf("%04o", f.Mode.Perm()), string(f.Content)})
						}
					}
				}
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(files)
			}
			for _, r := range rendered {
				for _, g := range r.Groups {
					for _, f := range g.Files {
						fmt.Fprintf(cmd.OutOrStdout(), "==> %s:%s (%04o, phase %s) <==\n%s\n", r.Node, f.Path, f.Mode.Perm(), g.Phase, f.Content)
					}
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "write one folder per node under this directory")
	cmd.Flags().StringSliceVar(&nodes, "node", nil, "render only these nodes")
	return cmd
}
