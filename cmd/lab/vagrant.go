package main

import (
	"github.com/labctl/lab/provision/provider/vagrant"
	"github.com/spf13/cobra"
)

// newVagrantVMsCommand is the hidden command the Vagrantfile runs when it is
// used by hand (LAB_FILE=FILE vagrant up): it prints the lab's VMs, every
// default resolved, as the JSON list `lab up` writes beside the Vagrantfile
// in the state directory, so the Vagrantfile never repeats lab's defaults.
func newVagrantVMsCommand(s *settings) *cobra.Command {
	return &cobra.Command{
		Use:    "vagrant-vms [FILE]",
		Short:  "Print the VMs of a vagrant lab as the JSON list its Vagrantfile applies",
		Hidden: true,
		Args:   cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			lab, err := loadLab(cmd, s, args)
			if err != nil {
				return err
			}
			list, err := vagrant.NewVMList(lab)
			if err != nil {
				return err
			}
			js, err := list.JSON()
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(js)
			return err
		},
	}
}
