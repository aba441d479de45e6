// Package static is the provider for hosts that already exist: bare metal or
// machines someone else created. It creates and deletes nothing; it only
// reports the SSH targets the lab file gives.
package static

import (
	"context"

	"github.com/labctl/lab/provision/labfile"
	"github.com/labctl/lab/provision/provider"
)

// Provider reports a lab's hosts exactly as the lab file gives them.
type Provider struct{}

var _ provider.Provider = Provider{}

// Create does nothing: static hosts exist already.
func (Provider) Create(context.Context, *labfile.Lab) error { return nil }

// Delete does nothing: lab never deletes machines it did not create.
func (Provider) Delete(context.Context, *labfile.Lab) error { return nil }

// Nodes returns each node's SSH target. Their state is unknown until SSH
// reaches them, and they have no out-of-band host keys.
func (Provider) Nodes(_ context.Context, lab *labfile.Lab) ([]provider.NodeInfo, error) {
	out := make([]provider.NodeInfo, 0, len(lab.Nodes))
	for i := range lab.Nodes {
		n := &lab.Nodes[i]
		host, port, user := lab.SSHTarget(n)
		out = append(out, provider.NodeInfo{
			Name:  n.Name,
			State: provider.StateUnknown,
			Host:  host,
			Port:  port,
			User:  user,
		})
	}
	return out, nil
}
