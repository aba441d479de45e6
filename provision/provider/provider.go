// Package provider defines where lab's nodes come from. A provider creates
// the machines a lab file describes (containers, VMs) or simply names the
// hosts that already exist, and tells the rest of lab how to reach each one
// over SSH. Everything after that goes through SSH; providers never
// configure a node beyond making it reachable.
package provider

import (
	"context"

	"github.com/labctl/lab/provision/labfile"
)

// Provider creates, lists and deletes the nodes of one lab.
//
// Create and Delete are idempotent: Create keeps nodes that already exist
// and are healthy, and Delete removes only what the provider created for
// this lab (providers that create nothing delete nothing).
type Provider interface {
	// Create makes every node of the lab exist, run and accept SSH.
	Create(ctx context.Context, lab *labfile.Lab) error
	// Delete removes the nodes and networks created for the lab.
	Delete(ctx context.Context, lab *labfile.Lab) error
	// Nodes reports every node of the lab, in lab file order, with where
	// to reach it. It does not wait: a node that is still booting may
	// report no host keys yet.
	Nodes(ctx context.Context, lab *labfile.Lab) ([]NodeInfo, error)
}

// State is whether a node's machine exists and runs.
type State string

// Node states.
const (
	// StateRunning: the machine runs (it may still be booting).
	StateRunning State = "running"
	// StateStopped: the machine exists but does not run.
	StateStopped State = "stopped"
	// StateMissing: the machine does not exist.
	StateMissing State = "missing"
	// StateUnknown: the provider cannot tell (e.g. a static host; only SSH
	// will say whether it answers).
	StateUnknown State = "unknown"
)

// NodeInfo says where a node is and how to trust it.
type NodeInfo struct {
	Name  string
	State State
	// Host, Port and User are the SSH target.
	Host string
	Port int
	User string
	// HostKeys are the node's SSH host public keys in authorized_keys
	// format ("ssh-ed25519 AAAA..."), read out of band (not over SSH).
	// They are what the "pinned" known-hosts policy trusts. Empty when the
	// provider has no side channel or the node is not up yet.
	HostKeys []string
	// KeyFile is the private key the provider authorised for User on the
	// node, or "" if the provider installs none (then the lab file's
	// ssh.keyFiles and the agent are used).
	KeyFile string
}
