package steps

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/labctl/lab/bpf/preflight"
	"github.com/labctl/lab/provision/labfile"
	"github.com/labctl/lab/provision/phase"
	"github.com/labctl/lab/templates"
)

// preflightArgs are lab-node preflight's flags for the lab's CNI.
func (c *Cluster) preflightArgs(node string) string {
	args := "--node-name " + shq(node) + " --cni " + c.Lab.CNI.Type
	if c.Lab.CNI.Type == labfile.CNICilium {
		args += " --cilium-version " + shq(c.Lab.CNI.Cilium.Version)
	}
	return args
}

// Preflight pushes lab-node to every cluster node and asks the kernel
// whether it has what the chosen datapath needs (program and map types,
// helpers, TCX, BTF, the chosen Cilium's minimum kernel). A node that lacks
// something required fails with the list; every report is kept for
// PreflightReports.
func (c *Cluster) Preflight() phase.Phase {
	return phase.Phase{
		Name:  "preflight",
		Needs: needsFacts,
		Title: "kernel check for the " + c.Lab.CNI.Type + " datapath (lab-node preflight)",
		Nodes: func() []string {
			if c.Lab.CNI.Type == labfile.CNINone {
				return nil
			}
			return c.kubeNodes()
		},
		Run: func(ctx context.Context, node string) error {
			bin, err := c.labNodeBinary(node)
			if err != nil {
				return err
			}
			// Only the binary: the service is the cni phase's.
			out, err := c.installOutput(ctx, node, []templates.File{bin}, labNodePath+" preflight "+c.preflightArgs(node)+"; true")
			if err != nil {
				return err
			}
			r, err := preflight.Parse([]byte(out))
			if err != nil {
				return err
			}
			c.mu.Lock()
			c.reports[node] = r
			c.mu.Unlock()
			if missing := r.Missing(); len(missing) > 0 {
				var names []string
				for _, m := range missing {
					names = append(names, m.Name+" ("+m.Detail+")")
				}
				return fmt.Errorf("kernel %s lacks what the %s datapath needs: %s; `lab doctor` shows the whole table",
					r.Kernel, r.Datapath, strings.Join(names, ", "))
			}
			return nil
		},
		Describe: func(node string) []string {
			return []string{"upload " + labNodePath, labNodePath + " preflight " + c.preflightArgs(node)}
		},
	}
}

// PreflightReports returns the reports the preflight phase gathered, in node
// order.
func (c *Cluster) PreflightReports() []preflight.Report {
	c.mu.Lock()
	defer c.mu.Unlock()
	var names []string
	for n := range c.reports {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]preflight.Report, 0, len(names))
	for _, n := range names {
		out = append(out, c.reports[n])
	}
	return out
}

// installOutput is install with one command whose output is returned.
func (c *Cluster) installOutput(ctx context.Context, node string, files []templates.File, cmd string) (string, error) {
	if _, err := c.install(ctx, node, files); err != nil {
		return "", err
	}
	return c.run(ctx, node, cmd)
}
