package provision

import (
	"context"

	"github.com/labctl/lab/bpf/preflight"
	"github.com/labctl/lab/provision/labfile"
	"github.com/labctl/lab/provision/phases"
	"github.com/labctl/lab/provision/workflow"
)

// Doctor runs the kernel check of the lab's datapath on every cluster node
// and returns each node's report, also when some lack what is needed (the
// error then says which). For Cilium it also checks what the chart needs
// of the node: bpffs at /sys/fs/bpf, shared mounts, cgroup v2 (see
// bpf/preflight).
func Doctor(ctx context.Context, l *labfile.Lab, o Options) ([]preflight.Report, error) {
	o.readOnly = true
	s, err := open(l, o, "doctor")
	if err != nil {
		return nil, err
	}
	defer s.close()
	if err := s.refreshNodes(ctx); err != nil {
		return nil, err
	}
	c := phases.NewRun(l, s.dir, s, s.rep)
	c.Sources = o.sources()
	// Cilium on container nodes needs cgroup v2 (see preflight.Cgroup2At).
	c.Containers = s.traits.Container()
	err = (&workflow.Engine{Report: s.rep, Limit: o.Limit}).Run(ctx, []workflow.Phase{c.Connect(), c.GatherFacts(), c.Preflight()})
	return c.PreflightReports(), err
}
