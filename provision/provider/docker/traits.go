package docker

import (
	"time"

	"github.com/labctl/lab/provision/provider"
)

// Traits are what the rest of lab needs to know about container nodes.
func Traits() provider.Traits {
	return provider.Traits{
		Nodes: provider.Containers,
		// Docker gives a container its first network as eth0.
		NodeInterface: "eth0",
		// A container answers SSH within seconds of Create; one that
		// does not is stopped or broken, not booting.
		ConnectTimeout: 30 * time.Second,
		// Nodes reads each container's host keys with docker exec.
		HostKeysOutOfBand: true,
		CreatesNodes:      true,
		Deletes:           "delete every container, volume and network labelled with the lab",
		// An offline site builds the node image from the bundle's
		// Debian root file system: there is no registry to pull it from.
		BundleRootFS: true,
	}
}
