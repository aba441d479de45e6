// Package provision owns the commands that act on a lab — up, reset, down,
// status — as ordered lists of phases, and the plan that explains them.
package provision

import (
	"fmt"
	"io"
	"strings"

	"github.com/labctl/lab/provision/labfile"
	"github.com/labctl/lab/provision/phases"
	"github.com/labctl/lab/provision/workflow"
)

// PlannedPhase is one line of `lab plan`: what a phase does and where.
type PlannedPhase struct {
	Name  string   `json:"name"`
	Title string   `json:"title"`
	Order string   `json:"order"`
	Nodes []string `json:"nodes"`
}

// UpPlan lists the phases of `lab up` for l, in order, with the nodes each
// one touches: the very phase list Up runs. Phases with no nodes are left
// out.
func UpPlan(l *labfile.Lab) []PlannedPhase {
	c := phases.NewRun(l, nil, nil, nil)
	var plan []PlannedPhase
	for _, p := range UpPhases(l, c, nodesPhase(l, nil)) {
		pp := PlannedPhase{Name: p.Name, Title: p.Title, Order: p.Order.String()}
		if p.Nodes != nil {
			pp.Nodes = p.Nodes()
		}
		if p.Order == workflow.Local && (p.Nodes == nil || len(pp.Nodes) > 0) {
			pp.Nodes = []string{"(this machine)"}
		}
		if len(pp.Nodes) > 0 {
			plan = append(plan, pp)
		}
	}
	return plan
}

// PrintPlan writes the plan as a readable list.
func PrintPlan(w io.Writer, l *labfile.Lab, plan []PlannedPhase) {
	fmt.Fprintf(w, "lab up %s: %d nodes, %d phases, endpoint %s\n", l.Metadata.Name, len(l.Nodes), len(plan), l.EndpointString())
	for i, p := range plan {
		fmt.Fprintf(w, "%2d. %-19s %-8s %s\n", i+1, p.Name, p.Order, p.Title)
		fmt.Fprintf(w, "    %s\n", strings.Join(p.Nodes, ", "))
	}
}
