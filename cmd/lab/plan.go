package main

import (
	"encoding/json"

	"github.com/labctl/lab/provision"
	"github.com/spf13/cobra"
)

func newPlanCommand(s *settings) *cobra.Command {
	return &cobra.Command{
		Use:   "plan [FILE]",
		Short: "Show what `lab up` would do, phase by phase and node by node",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			lab, err := loadLab(cmd, s, args)
			if err != nil {
				return err
			}
			plan := provision.UpPlan(lab)
			if s.Output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(plan)
			}
			provision.PrintPlan(cmd.OutOrStdout(), lab, plan)
			return nil
		},
	}
}
