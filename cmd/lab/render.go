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
		Long: `render builds every file lab would write on each node: haproxy.cfg,
keepalived.conf and its check script, containerd and crictl configs, sysctl and
module files, and the kubeadm configurations (checked by kubeadm's own
validation). Bootstrap tokens and certificate keys are generated at 'lab up'
time; render shows placeholders. With --out DIR each node gets a folder.`,
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
					n += len(r.Files)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "wrote %d files for %d nodes under %s\n", n, len(rendered), out)
				return nil
			}
			if s.Output == "json" {
				type file struct {
					Node    string `json:"node"`
					Path    string `json:"path"`
					Mode    string `json:"mode"`
					Content string `json:"content"`
				}
				var files []file
				for _, r := range rendered {
					for _, f := range r.Files {
						files = append(files, file{r.Node, f.Path, fmt.Sprintf("%04o", f.Mode.Perm()), string(f.Content)})
					}
				}
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(files)
			}
			for _, r := range rendered {
				for _, f := range r.Files {
					fmt.Fprintf(cmd.OutOrStdout(), "==> %s:%s (%04o) <==\n%s\n", r.Node, f.Path, f.Mode.Perm(), f.Content)
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "write one folder per node under this directory")
	cmd.Flags().StringSliceVar(&nodes, "node", nil, "render only these nodes")
	return cmd
}
