package main

import (
	"fmt"

	"github.com/labctl/lab/provision/graph"
	"github.com/spf13/cobra"
)

func newGraphCommand(s *settings) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "graph [FILE]",
		Short: "Draw the lab's topology as Mermaid or Graphviz DOT",
		Long: `graph prints the lab's topology: nodes by network and role, the VIP and the
nodes that can hold it. Mermaid renders in Markdown on GitHub; DOT with
'lab graph --format dot | dot -Tsvg > lab.svg'.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			lab, err := loadLab(cmd, s, args)
			if err != nil {
				return err
			}
			switch format {
			case "mermaid":
				fmt.Fprint(cmd.OutOrStdout(), graph.Mermaid(lab))
			case "dot":
				fmt.Fprint(cmd.OutOrStdout(), graph.DOT(lab))
			default:
				return usageError{fmt.Errorf("--format %q: use mermaid or dot", format)}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&format, "format", "mermaid", "mermaid or dot")
	return cmd
}
