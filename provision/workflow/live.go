package workflow

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Live draws the running phase on a terminal: one line per node with a
// spinner, its elapsed time and its latest output, redrawn in place; a
// finished phase stays on screen with ✓ or ✗ per node.
type Live struct {
	mu    sync.Mutex
	w     io.Writer
	width int
	phase string
	title string
	start time.Time
	nodes []string
	state map[string]*nodeLine
	drawn int // lines drawn for the current phase
	stop  chan struct{}
	done  chan struct{}
	frame int
}

type nodeLine struct {
	status  string // "", run, ok, skip, fail
	start   time.Time
	elapsed time.Duration
	last    string
}

// NewLive starts a live view on w, a terminal width columns wide. Call Close
// when the run ends.
func NewLive(w io.Writer, width int) *Live {
	if width < 40 {
		width = 80
	}
	l := &Live{w: w, width: width, stop: make(chan struct{}), done: make(chan struct{})}
	go l.tick()
	return l
}

func (l *Live) tick() {
	defer close(l.done)
	t := time.NewTicker(120 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			l.mu.Lock()
			l.frame++
			if l.phase != "" {
				l.redraw()
			}
			l.mu.Unlock()
		}
	}
}

// Close stops the spinner.
func (l *Live) Close() {
	close(l.stop)
	<-l.done
}

var spinner = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}

// Event implements Reporter.
func (l *Live) Event(e Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch e.Kind {
	case PhaseStart:
		l.phase, l.title, l.start, l.nodes, l.drawn = e.Phase, e.Message, time.Now(), e.Nodes, 0
		l.state = map[string]*nodeLine{}
		for _, n := range e.Nodes {
			l.state[n] = &nodeLine{}
		}
		l.redraw()
	case NodeStart:
		if s := l.state[e.Node]; s != nil {
			s.status, s.start = "run", time.Now()
		}
	case NodeDone, NodeSkip, NodeFail:
		if s := l.state[e.Node]; s != nil {
			s.status, s.elapsed = map[Kind]string{NodeDone: "ok", NodeSkip: "skip", NodeFail: "fail"}[e.Kind], e.Elapsed
			if e.Kind == NodeFail {
				s.last = e.Message
			}
		}
		l.redraw()
	case Log, Progress, Info:
		// Inside a phase, news goes on its node's line (or, for the
		// phase as a whole, the local line): printing it would tear the
		// block being redrawn.
		key := e.Node
		if _, ok := l.state[key]; !ok && l.phase != "" && len(l.nodes) == 1 {
			key = l.nodes[0]
		}
		if s := l.state[key]; s != nil {
			s.last = e.Message
			if e.Kind == Progress {
				s.last = transfer(e)
			}
		} else if e.Kind == Info && l.phase == "" {
			fmt.Fprintln(l.w, describe(e, false))
		}
	case PhaseDone, PhaseFail:
		l.redraw()
		l.phase, l.drawn = "", 0
	case NodePlan, RunDone, RunFail:
		fmt.Fprintln(l.w, describe(e, false))
	}
}

// redraw rewrites the current phase's block in place.
func (l *Live) redraw() {
	var b strings.Builder
	if l.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", l.drawn)
	}
	mark := spinner[l.frame%len(spinner)]
	allDone := true
	for _, n := range l.nodes {
		if s := l.state[n]; s.status == "" || s.status == "run" {
			allDone = false
		}
	}
	if allDone {
		mark = "✓"
		for _, n := range l.nodes {
			if l.state[n].status == "fail" {
				mark = "✗"
			}
		}
	}
	l.line(&b, fmt.Sprintf("%s %s  %s  %s", mark, l.phase, l.title, round(time.Since(l.start))))
	for _, n := range l.nodes {
		s := l.state[n]
		var m, t string
		switch s.status {
		case "":
			m, t = "·", "waiting"
		case "run":
			m, t = spinner[l.frame%len(spinner)], round(time.Since(s.start)).String()
		case "ok":
			m, t = "✓", round(s.elapsed).String()
		case "skip":
			m, t = "✓", round(s.elapsed).String()+" (already done)"
		case "fail":
			m, t = "✗", round(s.elapsed).String()
		}
		name := n
		if name == "" {
			name = "local"
		}
		l.line(&b, fmt.Sprintf("   %s %-14s %-10s %s", m, name, t, s.last))
	}
	l.drawn = 1 + len(l.nodes)
	_, _ = io.WriteString(l.w, b.String())
}

func (l *Live) line(b *strings.Builder, s string) {
	s = strings.ReplaceAll(s, "\n", " ")
	if r := []rune(s); len(r) > l.width-1 {
		s = string(r[:l.width-2]) + "…"
	}
	b.WriteString("\x1b[2K" + s + "\n")
}
