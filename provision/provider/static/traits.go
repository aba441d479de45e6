package static

import (
	"time"

	"github.com/labctl/lab/provision/provider"
)

// Traits are what the rest of lab needs to know about existing hosts.
func Traits() provider.Traits {
	return provider.Traits{
		Nodes: provider.Hosts,
		// A host is assumed to have one NIC until its facts say which
		// one carries the lab network.
		NodeInterface: "eth0",
		// A host may be rebooting, or reached through slow bastions.
		ConnectTimeout: 2 * time.Minute,
		// Only SSH reaches a host: its keys are learnt on first use or
		// from known_hosts.
		HostKeysOutOfBand: false,
		CreatesNodes:      false,
		Deletes:           "nothing: lab never deletes hosts it did not create",
	}
}
