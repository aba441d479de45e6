// Package workflow is the generic engine behind lab's commands: a command is an
// explicit list of phases, each run on a set of nodes in parallel, one at a
// time or once; a phase that finds its work already done on a node skips it.
// The engine times every phase and node, reports progress as events and
// keeps every node's error.
package workflow

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Order says how a phase visits its nodes.
type Order int

const (
	// Parallel runs on every node at once, within the engine's limit.
	Parallel Order = iota
	// Serial runs on one node after another and stops at the first error.
	Serial
	// Local runs once on the machine that runs lab; Nodes, if set, only
	// says whether there is anything to do (an empty list skips it).
	Local
)

func (o Order) String() string {
	switch o {
	case Serial:
		return "serial"
	case Local:
		return "local"
	}
	return "parallel"
}

// Phase is one step of a command. Phases are plain values so that a command
// reads as a list and tests can build their own.
type Phase struct {
	Name  string
	Title string
	Order Order
	// Nodes returns the nodes the phase runs on; called when the phase
	// starts, so it may depend on what earlier phases found.
	Nodes func() []string
	// Done reports whether the phase's result is already in place on node;
	// then Run is skipped. Optional.
	Done func(ctx context.Context, node string) (bool, error)
	// Run does the work on node ("" for Local phases).
	Run func(ctx context.Context, node string) error
	// Describe says what Run would do on node, for --dry-run. Optional.
	Describe func(node string) []string
	// ReadOnly phases change nothing anywhere (connect, facts): a dry run
	// runs them for real, so that the Done checks after them can look.
	ReadOnly bool
	// Plan, when set, tells a dry run what the phase would do on node,
	// looking (read-only) where Done cannot: nil lines mean nothing to do.
	// Local phases whose work is elsewhere (creating nodes) use it.
	Plan func(ctx context.Context, node string) ([]string, error)
	// Needs names the earlier phases whose results in this same run the
	// phase uses (connections, facts). Selecting a phase alone (lab up
	// phase NAME) runs what it needs first; skipping a needed phase is an
	// error before anything runs.
	Needs []string
}

// Engine runs phases.
type Engine struct {
	Report Reporter
	// Limit bounds how many nodes a parallel phase works on at once.
	Limit int
	// Skip names phases not to run (--skip-phases).
	Skip []string
	// Only, if set, runs just these phases (lab up phase NAME).
	Only []string
	// Until, if set, stops after this phase (--until).
	Until string
	// DryRun changes nothing: read-only phases run, every other phase
	// runs its read-only Done check on each node and reports "done" or
	// what it would do there. A node a read-only phase could not reach
	// is reported, not checked further, and does not stop the run.
	DryRun bool
	// Completed, if set, is told about every node a phase finished (not in
	// a dry run, which finishes nothing).
	Completed func(phase, node string, took time.Duration)
}

// dryRun is what one dry run learns as it goes: the Engine holds settings
// only.
type dryRun struct {
	mu sync.Mutex
	// unreachable holds why a node was not checked further.
	unreachable map[string]string
}

// why says why the dry run did not check node further, or "".
func (d *dryRun) why(node string) string {
	if d == nil {
		return ""
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.unreachable[node]
}

func (d *dryRun) markUnreachable(node, why string) {
	if d == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.unreachable == nil {
		d.unreachable = map[string]string{}
	}
	d.unreachable[node] = why
}

// Check verifies that the names in Skip, Only and Until are phases of the
// list, so that a typo fails before any work starts, and that no selected
// phase needs one that is skipped or comes after it.
func (e *Engine) Check(phases []Phase) error {
	if err := e.checkNames(phases); err != nil {
		return err
	}
	_, err := e.selection(phases)
	return err
}

// selection is the set of phases that run: Only (or every phase) with
// what they need, transitively, less Skip.
func (e *Engine) selection(phases []Phase) (map[string]bool, error) {
	index := map[string]int{}
	for i, p := range phases {
		index[p.Name] = i
	}
	skipped := map[string]bool{}
	for _, s := range e.Skip {
		skipped[s] = true
	}
	sel := map[string]bool{}
	var add func(name string) error
	add = func(name string) error {
		if sel[name] {
			return nil
		}
		sel[name] = true
		p := phases[index[name]]
		for _, need := range p.Needs {
			i, ok := index[need]
			switch {
			case !ok:
				return fmt.Errorf("phase %s needs phase %s, which this command does not have", name, need)
			case i > index[name]:
				return fmt.Errorf("phase %s needs phase %s, which runs after it", name, need)
			case skipped[need]:
				return fmt.Errorf("phase %s needs phase %s, which --skip-phases leaves out; skip %s too, or keep %s", name, need, name, need)
			}
			if err := add(need); err != nil {
				return err
			}
		}
		return nil
	}
	for _, p := range phases {
		if (len(e.Only) == 0 || slices.Contains(e.Only, p.Name)) && !skipped[p.Name] {
			if err := add(p.Name); err != nil {
				return nil, err
			}
		}
	}
	return sel, nil
}

func (e *Engine) checkNames(phases []Phase) error {
	known := map[string]bool{}
	var names []string
	for _, p := range phases {
		known[p.Name] = true
		names = append(names, p.Name)
	}
	var bad []string
	for _, n := range append(append(append([]string{}, e.Skip...), e.Only...), e.Until) {
		if n != "" && !known[n] {
			bad = append(bad, n)
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("unknown phase %s; the phases are: %s", strings.Join(bad, ", "), strings.Join(names, ", "))
	}
	return nil
}

// Run runs the phases in order and stops at the first phase that fails.
func (e *Engine) Run(ctx context.Context, phases []Phase) error {
	if err := e.checkNames(phases); err != nil {
		return err
	}
	sel, err := e.selection(phases)
	if err != nil {
		return err
	}
	report := e.Report
	if report == nil {
		report = Discard{}
	}
	var dr *dryRun
	if e.DryRun {
		dr = &dryRun{}
	}
	start := time.Now()
	for _, p := range phases {
		if !sel[p.Name] {
			report.Event(Event{Kind: PhaseSkip, Phase: p.Name, Message: "not selected"})
		} else if err := e.runPhase(ctx, report, dr, p); err != nil {
			report.Event(Event{Kind: RunFail, Elapsed: time.Since(start), Message: err.Error()})
			return err
		}
		if p.Name == e.Until {
			report.Event(Event{Kind: RunDone, Elapsed: time.Since(start), Message: "stopped after " + p.Name})
			return nil
		}
	}
	report.Event(Event{Kind: RunDone, Elapsed: time.Since(start)})
	return nil
}

func (e *Engine) runPhase(ctx context.Context, report Reporter, dr *dryRun, p Phase) error {
	var nodes []string
	if p.Nodes != nil {
		nodes = p.Nodes()
	}
	if p.Order == Local && (p.Nodes == nil || len(nodes) > 0) {
		nodes = []string{""}
	}
	if len(nodes) == 0 {
		report.Event(Event{Kind: PhaseSkip, Phase: p.Name, Message: "no nodes"})
		return nil
	}
	start := time.Now()
	report.Event(Event{Kind: PhaseStart, Phase: p.Name, Message: p.Title, Nodes: nodes})
	if e.DryRun && !p.ReadOnly {
		for _, n := range nodes {
			e.plan(ctx, report, dr, p, n)
		}
		report.Event(Event{Kind: PhaseDone, Phase: p.Name, Elapsed: time.Since(start)})
		return nil
	}
	var err error
	if e.DryRun {
		// Only reachable nodes are looked at further.
		nodes = slices.DeleteFunc(nodes, func(n string) bool { return dr.why(n) != "" })
	}
	switch p.Order {
	case Serial, Local:
		for _, n := range nodes {
			if err = e.runNode(ctx, report, dr, p, n); err != nil {
				break
			}
		}
	default:
		err = e.fanOut(ctx, report, dr, p, nodes)
	}
	if err != nil && !e.DryRun {
		report.Event(Event{Kind: PhaseFail, Phase: p.Name, Elapsed: time.Since(start), Message: err.Error()})
		return fmt.Errorf("phase %s: %w", p.Name, err)
	}
	report.Event(Event{Kind: PhaseDone, Phase: p.Name, Elapsed: time.Since(start)})
	return nil
}

// plan reports, for a dry run, whether p is done on node n or what it
// would do there, using only read-only checks.
func (e *Engine) plan(ctx context.Context, report Reporter, dr *dryRun, p Phase, n string) {
	start := time.Now()
	var would []string
	if p.Describe != nil {
		would = p.Describe(n)
	}
	switch {
	case dr.why(n) != "":
		would = append([]string{"(not checked: " + dr.why(n) + ")"}, would...)
	case p.Plan != nil:
		lines, err := p.Plan(ctx, n)
		if err != nil {
			would = append([]string{"(could not check: " + err.Error() + ")"}, would...)
		} else if lines == nil {
			report.Event(Event{Kind: NodeSkip, Phase: p.Name, Node: n, Elapsed: time.Since(start), Message: "done"})
			return
		} else {
			would = lines
		}
	case p.Done != nil:
		done, err := p.Done(ctx, n)
		if err != nil {
			would = append([]string{"(could not check: " + err.Error() + ")"}, would...)
		} else if done {
			report.Event(Event{Kind: NodeSkip, Phase: p.Name, Node: n, Elapsed: time.Since(start), Message: "done"})
			return
		}
	}
	report.Event(Event{Kind: NodePlan, Phase: p.Name, Node: n, Elapsed: time.Since(start), Lines: would})
}

// fanOut runs p on every node within the engine's limit and returns every
// node's error, each prefixed with its node.
func (e *Engine) fanOut(ctx context.Context, report Reporter, dr *dryRun, p Phase, nodes []string) error {
	limit := e.Limit
	if limit <= 0 {
		limit = 32
	}
	sem := make(chan struct{}, limit)
	var (
		mu   sync.Mutex
		errs = map[string]error{}
		wg   sync.WaitGroup
	)
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				mu.Lock()
				errs[n] = fmt.Errorf("%s: %w", n, ctx.Err())
				mu.Unlock()
				return
			}
			defer func() { <-sem }()
			if err := e.runNode(ctx, report, dr, p, n); err != nil {
				mu.Lock()
				errs[n] = err
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return joinSorted(errs)
}

func (e *Engine) runNode(ctx context.Context, report Reporter, dr *dryRun, p Phase, n string) error {
	start := time.Now()
	report.Event(Event{Kind: NodeStart, Phase: p.Name, Node: n})
	fail := func(err error) error {
		report.Event(Event{Kind: NodeFail, Phase: p.Name, Node: n, Elapsed: time.Since(start), Message: err.Error()})
		dr.markUnreachable(n, p.Name+" failed")
		return nameNode(n, err)
	}
	if p.Done != nil {
		done, err := p.Done(ctx, n)
		if err != nil {
			return fail(err)
		}
		if done {
			report.Event(Event{Kind: NodeSkip, Phase: p.Name, Node: n, Elapsed: time.Since(start), Message: "already done"})
			e.completed(p.Name, n, time.Since(start))
			return nil
		}
	}
	if err := p.Run(ctx, n); err != nil {
		return fail(err)
	}
	took := time.Since(start)
	report.Event(Event{Kind: NodeDone, Phase: p.Name, Node: n, Elapsed: took})
	e.completed(p.Name, n, took)
	return nil
}

// nameNode makes err name node once: errors from the SSH transport (and
// others that know their node) already start a clause with "node: ", and a
// second prefix would say it twice.
func nameNode(node string, err error) error {
	if node == "" || strings.HasPrefix(err.Error(), node+": ") || strings.Contains(err.Error(), " "+node+": ") {
		return err
	}
	return fmt.Errorf("%s: %w", node, err)
}

func (e *Engine) completed(phase, node string, took time.Duration) {
	if e.Completed != nil && !e.DryRun {
		e.Completed(phase, node, took)
	}
}

func joinSorted(errs map[string]error) error {
	if len(errs) == 0 {
		return nil
	}
	keys := make([]string, 0, len(errs))
	for k := range errs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	list := make([]error, len(keys))
	for i, k := range keys {
		list[i] = errs[k]
	}
	return errors.Join(list...)
}
