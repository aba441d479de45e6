package workflow

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Kind names an event.
type Kind string

// Event kinds, as they appear in --output json.
const (
	PhaseStart Kind = "phase-start"
	PhaseDone  Kind = "phase-done"
	PhaseFail  Kind = "phase-fail"
	PhaseSkip  Kind = "phase-skip"
	NodeStart  Kind = "node-start"
	NodeDone   Kind = "node-done"
	NodeSkip   Kind = "node-skip"
	NodeFail   Kind = "node-fail"
	NodePlan   Kind = "node-plan"
	Log        Kind = "log"
	Progress   Kind = "progress"
	Info       Kind = "info"
	RunDone    Kind = "run-done"
	RunFail    Kind = "run-fail"
)

// Event is one thing that happened during a run.
type Event struct {
	Time    time.Time     `json:"time"`
	Kind    Kind          `json:"event"`
	Phase   string        `json:"phase,omitempty"`
	Node    string        `json:"node,omitempty"`
	Message string        `json:"message,omitempty"`
	Elapsed time.Duration `json:"-"`
	Seconds float64       `json:"seconds,omitempty"`
	Nodes   []string      `json:"nodes,omitempty"`
	Lines   []string      `json:"lines,omitempty"`
	// Bytes and Total describe transfers (Progress events).
	Bytes int64 `json:"bytes,omitempty"`
	Total int64 `json:"total,omitempty"`
}

// Reporter receives events; implementations are safe for concurrent use.
type Reporter interface{ Event(Event) }

// Discard drops every event.
type Discard struct{}

// Event implements Reporter.
func (Discard) Event(Event) {}

// JSON writes one event per line, for CI.
type JSON struct {
	mu sync.Mutex
	w  io.Writer
}

// NewJSON returns a reporter that writes JSON lines to w.
func NewJSON(w io.Writer) *JSON { return &JSON{w: w} }

// Event implements Reporter.
func (j *JSON) Event(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.Time = e.Time.UTC()
	if e.Elapsed > 0 {
		e.Seconds = e.Elapsed.Seconds()
	}
	b, err := json.Marshal(e)
	if err != nil {
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	_, _ = j.w.Write(append(b, '\n'))
}

// Plain writes timestamped lines, for logs and terminals that are not TTYs.
type Plain struct {
	mu      sync.Mutex
	w       io.Writer
	verbose bool
}

// NewPlain returns a line reporter; verbose also prints command output.
func NewPlain(w io.Writer, verbose bool) *Plain { return &Plain{w: w, verbose: verbose} }

// Event implements Reporter.
func (p *Plain) Event(e Event) {
	line := describe(e, p.verbose)
	if line == "" {
		return
	}
	t := e.Time
	if t.IsZero() {
		t = time.Now()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "%s %s\n", t.Format("15:04:05.000"), line)
}

func describe(e Event, verbose bool) string {
	where := e.Phase
	if e.Node != "" {
		where += " " + e.Node
	}
	switch e.Kind {
	case PhaseStart:
		if len(e.Nodes) == 1 && e.Nodes[0] == "" {
			return fmt.Sprintf("▶ %s: %s", e.Phase, e.Message)
		}
		return fmt.Sprintf("▶ %s: %s (%s)", e.Phase, e.Message, strings.Join(e.Nodes, ", "))
	case PhaseDone:
		return fmt.Sprintf("✓ %s (%s)", e.Phase, round(e.Elapsed))
	case PhaseFail:
		return fmt.Sprintf("✗ %s (%s)", e.Phase, round(e.Elapsed))
	case PhaseSkip:
		if verbose {
			return fmt.Sprintf("- %s skipped: %s", e.Phase, e.Message)
		}
	case NodeDone:
		if e.Node == "" {
			return "" // a local phase: its phase-done line says it
		}
		return fmt.Sprintf("  ✓ %s (%s)", where, round(e.Elapsed))
	case NodeSkip:
		return fmt.Sprintf("  ✓ %s %s (%s)", where, e.Message, round(e.Elapsed))
	case NodeFail:
		return fmt.Sprintf("  ✗ %s (%s): %s", where, round(e.Elapsed), e.Message)
	case NodePlan:
		var b strings.Builder
		fmt.Fprintf(&b, "  %s would:", where)
		if len(e.Lines) == 0 {
			b.WriteString(" check and do its work")
		}
		for _, l := range e.Lines {
			b.WriteString("\n      " + l)
		}
		return b.String()
	case Log:
		if verbose {
			return fmt.Sprintf("  %s | %s", where, e.Message)
		}
	case Progress:
		return fmt.Sprintf("  %s %s", where, transfer(e))
	case Info:
		return "  " + strings.TrimSpace(where+" "+e.Message)
	case RunDone:
		msg := "done"
		if e.Message != "" {
			msg = e.Message
		}
		return fmt.Sprintf("✓ %s in %s", msg, round(e.Elapsed))
	case RunFail:
		return fmt.Sprintf("✗ failed after %s", round(e.Elapsed))
	}
	return ""
}

func transfer(e Event) string {
	s := fmt.Sprintf("%s", bytesString(e.Bytes))
	if e.Total > 0 {
		s += " / " + bytesString(e.Total)
	}
	if e.Elapsed > 0 {
		s += fmt.Sprintf(" at %s/s", bytesString(int64(float64(e.Bytes)/e.Elapsed.Seconds())))
	}
	if e.Message != "" {
		s += " " + e.Message
	}
	return s
}

func bytesString(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Second:
		return d.Round(100 * time.Millisecond)
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	}
	return d.Round(time.Millisecond)
}

// Multi sends every event to several reporters.
type Multi []Reporter

// Event implements Reporter.
func (m Multi) Event(e Event) {
	for _, r := range m {
		r.Event(e)
	}
}
