package provision

import (
	"context"
	"fmt"
	"time"

	"github.com/labctl/lab/provision/labfile"
	"github.com/labctl/lab/provision/phases"
	"github.com/labctl/lab/provision/provider"
	"github.com/labctl/lab/provision/provider/registry"
	"github.com/labctl/lab/provision/state"
	"github.com/labctl/lab/provision/workflow"
)

// UpPhases is the ordered phase list of `lab up`.
func UpPhases(l *labfile.Lab, c *phases.Run, nodesPhase workflow.Phase) []workflow.Phase {
	list := []workflow.Phase{
		nodesPhase,
		c.Connect(),
		c.GatherFacts(),
		c.PrepareOS(),
		c.Network(),
		c.Packages(),
		c.LoadBalancer(),
		c.VIP(2 * time.Minute),
		c.Kubernetes(),
		c.Init(),
		c.JoinControlPlanes(),
		c.JoinWorkers(),
		c.Preflight(),
		c.CNIImages(),
		c.CNI(),
		c.PodRoutes(3 * time.Minute),
		c.BGP(),
		c.AddonImages(),
		c.Addons(),
		c.Ready(5 * time.Minute),
		c.Kubeconfig(),
	}
	return list
}

// Up brings the lab to the state its lab file describes, skipping every
// phase that is already done on a node.
func Up(ctx context.Context, l *labfile.Lab, o Options) error {
	s, err := open(l, o, "up")
	if err != nil {
		return err
	}
	defer s.close()
	c := phases.NewRun(l, s.dir, s, s.rep)
	c.Sources = o.sources()
	c.Containers = s.traits.Container()
	nodes := nodesPhase(l, s)
	eng := &workflow.Engine{
		Report: s.rep,
		Limit:  o.Limit,
		Skip:   o.Skip,
		Only:   o.Only,
		Until:  o.Until,
		DryRun: o.DryRun,
		Completed: func(ph, node string, took time.Duration) {
			_ = s.dir.Record(state.Entry{Phase: ph, Node: node, At: time.Now().UTC(), Seconds: took.Seconds()})
		},
	}
	return eng.Run(ctx, UpPhases(l, c, nodes))
}

// nodesPhase creates the lab's nodes through its provider (s is nil when
// only planning). A provider that creates nothing is only asked where the
// nodes are.
func nodesPhase(l *labfile.Lab, s *session) workflow.Phase {
	t := registry.Traits(l)
	if !t.CreatesNodes {
		return workflow.Phase{Name: "nodes", Title: t.Nodes.String() + ": nothing to create", Order: workflow.Local, ReadOnly: true,
			Run: func(ctx context.Context, _ string) error { return s.refreshNodes(ctx) }}
	}
	return workflow.Phase{
		Name:  "nodes",
		Title: "create the " + l.Provider.Type + " nodes (running ones are kept)",
		Order: workflow.Local,
		Run: func(ctx context.Context, _ string) error {
			if err := s.prov.Create(ctx, l); err != nil {
				return err
			}
			return s.refreshNodes(ctx)
		},
		Describe: func(string) []string {
			return []string{fmt.Sprintf("%s: create %d nodes and their networks, or keep the running ones", l.Provider.Type, len(l.Nodes))}
		},
		// A dry run asks the provider which nodes exist and run.
		Plan: func(ctx context.Context, _ string) ([]string, error) {
			if err := s.refreshNodes(ctx); err != nil {
				return nil, err
			}
			return s.missingNodes(), nil
		},
	}
}

// missingNodes says which of the lab's nodes the provider would create or
// start, as the nodes phase's dry run reports them; nil when every node
// runs.
func (s *session) missingNodes() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var would []string
	for _, n := range s.lab.Nodes {
		switch in, ok := s.nodes[n.Name]; {
		case !ok || in.State == provider.StateMissing:
			would = append(would, "create "+n.Name)
		case in.State == provider.StateStopped:
			would = append(would, "start "+n.Name)
		}
	}
	return would
}
