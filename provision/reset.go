package provision

import (
	"context"
	"time"

	"github.com/labctl/lab/provision/labfile"
	"github.com/labctl/lab/provision/phases"
	"github.com/labctl/lab/provision/workflow"
)

// Reset wipes Kubernetes and everything else lab up installed from every
// node, then audits each node and fails listing anything left. The nodes
// themselves stay (lab down deletes them).
func Reset(ctx context.Context, l *labfile.Lab, o Options) error {
	s, err := open(l, o, "reset")
	if err != nil {
		return err
	}
	defer s.close()
	if err := s.refreshNodes(ctx); err != nil {
		return err
	}
	c := phases.NewRun(l, s.dir, s, s.rep)
	eng := &workflow.Engine{Report: s.rep, Limit: o.Limit, DryRun: o.DryRun, Skip: o.Skip}
	if err := eng.Run(ctx, []workflow.Phase{c.Connect(), c.Reset(), c.Audit()}); err != nil {
		return err
	}
	if o.DryRun {
		return nil
	}
	_ = removeIfExists(s.dir.Kubeconfig())
	return s.dir.ClearJournal()
}

// Down deletes what the provider created for the lab (its traits say what
// that is; static hosts are left as they are) and the lab's state
// directory.
func Down(ctx context.Context, l *labfile.Lab, o Options) error {
	s, err := open(l, o, "down")
	if err != nil {
		return err
	}
	defer s.close()
	start := time.Now()
	s.rep.Event(workflow.Event{Kind: workflow.PhaseStart, Phase: "down", Message: "delete what the " + l.Provider.Type + " provider made for lab " + l.Metadata.Name, Nodes: []string{""}})
	if o.DryRun {
		s.rep.Event(workflow.Event{Kind: workflow.NodePlan, Phase: "down", Lines: []string{s.traits.Deletes, "remove " + s.dir.Path()}})
		return nil
	}
	if err := s.prov.Delete(ctx, l); err != nil {
		s.rep.Event(workflow.Event{Kind: workflow.PhaseFail, Phase: "down", Elapsed: time.Since(start), Message: err.Error()})
		return err
	}
	if err := s.dir.Remove(); err != nil {
		return err
	}
	s.rep.Event(workflow.Event{Kind: workflow.PhaseDone, Phase: "down", Elapsed: time.Since(start)})
	return nil
}
