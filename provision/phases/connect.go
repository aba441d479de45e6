package phases

import (
	"context"

	"github.com/labctl/lab/provision/workflow"
)

// The phases every phase that works on nodes builds on: connect dials
// every node, facts reads what the node files depend on.
const (
	ConnectPhase = "connect"
	FactsPhase   = "facts"
)

// needsFacts is what a phase that renders or checks node files needs run
// first in the same command: the facts of its nodes.
var needsFacts = []string{FactsPhase}

// Connect reaches every node over SSH, verifying host keys per the lab's
// policy. It always runs: a connection is what every later phase needs.
func (r *Run) Connect() workflow.Phase {
	return workflow.Phase{
		Name:     ConnectPhase,
		ReadOnly: true,
		Title:    "reach every node over SSH (host keys: " + r.Lab.SSH.KnownHosts + ")",
		Nodes:    r.AllNodes,
		Run: func(ctx context.Context, node string) error {
			_, err := r.run(ctx, node, "true")
			return err
		},
		Describe: func(string) []string {
			return []string{"connect over SSH; verify the host key against " + r.State.KnownHosts()}
		},
	}
}
