package vagrant

import (
	"time"

	"github.com/labctl/lab/provision/provider"
)

// Traits are what the rest of lab needs to know about VirtualBox VMs.
func Traits() provider.Traits {
	return provider.Traits{
		Nodes: provider.VMs,
		// A VirtualBox VM's first NIC is the NAT one (10.0.2.15), the
		// same on every VM; the host-only lab network is the second.
		NodeInterface: "eth1",
		// A VM may still be booting when Nodes first reports it.
		ConnectTimeout: 2 * time.Minute,
		// Vagrant has no side channel to a VM's host keys.
		HostKeysOutOfBand: false,
		CreatesNodes:      true,
		Deletes:           "destroy the VMs Vagrant made for the lab (vagrant destroy)",
	}
}
