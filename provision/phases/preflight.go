package phases

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/labctl/lab/bpf/preflight"
	"github.com/labctl/lab/provision/labfile"
	"github.com/labctl/lab/provision/workflow"
	"github.com/labctl/lab/templates"
)

// preflightArgs are lab-node preflight's flags for the lab's CNI.
func (r *Run) preflightArgs(node string) string {
	args := "--node-name " + shq(node) + " --cni " + r.Lab.CNI.Type
	if r.Lab.CNI.Type == labfile.CNICilium {
		args += " --cilium-version " + shq(r.Lab.CNI.Cilium.Version)
		if r.Containers {
			args += " --container"
		}
	}
	return args
}

// Preflight pushes lab-node to every cluster node and asks the kernel
// whether it has what the chosen datapath needs (program and map types,
// helpers, TCX, BTF, the chosen Cilium's minimum kernel, and for Cilium
// the node's bpffs, shared mounts and cgroup v2). A node that lacks
// something required fails with the list; every report is kept for
// PreflightReports.
func (r *Run) Preflight() workflow.Phase {
	return workflow.Phase{
		Name:  "preflight",
		Needs: needsFacts,
		Title: "kernel check for the " + r.Lab.CNI.Type + " datapath (lab-node preflight)",
		Nodes: func() []string {
			if r.Lab.CNI.Type == labfile.CNINone {
				return nil
			}
			return r.kubeNodes()
		},
		Run: func(ctx context.Context, node string) error {
			bin, err := r.labNodeBinary(node)
			if err != nil {
				return err
			}
			// Only the binary: the service is the cni phase's.
			out, err := r.installOutput(ctx, node, []templates.File{bin}, labNodePath+" preflight "+r.preflightArgs(node)+"; true")
			if err != nil {
				return err
			}
			rep, err := preflight.Parse([]byte(out))
			if err != nil {
				return err
			}
			r.mu.Lock()
			r.reports[node] = rep
			r.mu.Unlock()
			if missing := rep.Missing(); len(missing) > 0 {
				var names []string
				for _, m := range missing {
					names = append(names, m.Name+" ("+m.Detail+")")
				}
				return fmt.Errorf("kernel %s lacks what the %s datapath needs: %s; `lab doctor` shows the whole table",
					rep.Kernel, rep.Datapath, strings.Join(names, ", "))
			}
			return nil
		},
		Describe: func(node string) []string {
			return []string{"upload " + labNodePath, labNodePath + " preflight " + r.preflightArgs(node)}
		},
	}
}

// PreflightReports returns the reports the preflight phase gathered, in node
// order.
func (r *Run) PreflightReports() []preflight.Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	var names []string
	for n := range r.reports {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]preflight.Report, 0, len(names))
	for _, n := range names {
		out = append(out, r.reports[n])
	}
	return out
}

// installOutput is install with one command whose output is returned.
func (r *Run) installOutput(ctx context.Context, node string, files []templates.File, cmd string) (string, error) {
	if _, err := r.install(ctx, node, files); err != nil {
		return "", err
	}
	return r.run(ctx, node, cmd)
}
