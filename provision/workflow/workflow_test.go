package workflow

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labctl/lab/internal/syncbuf"
)

type recorder struct {
	mu     sync.Mutex
	events []Event
}

func (r *recorder) Event(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) kinds(k Kind) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		if e.Kind == k {
			out = append(out, e.Phase+"/"+e.Node)
		}
	}
	return out
}

func nodes(ns ...string) func() []string { return func() []string { return ns } }

func TestParallelKeepsEveryNodesError(t *testing.T) {
	var ran atomic.Int32
	p := Phase{Name: "os", Order: Parallel, Nodes: nodes("a", "b", "c"), Run: func(_ context.Context, n string) error {
		ran.Add(1)
		if n != "b" {
			return errors.New("swap is on")
		}
		return nil
	}}
	rec := &recorder{}
	err := (&Engine{Report: rec}).Run(context.Background(), []Phase{p, {Name: "never", Order: Local, Run: func(context.Context, string) error {
		t.Error("ran a phase after a failed one")
		return nil
	}}})
	if err == nil || ran.Load() != 3 {
		t.Fatalf("err %v, ran %d", err, ran.Load())
	}
	for _, want := range []string{"phase os: a: swap is on", "c: swap is on"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err, want)
		}
	}
	if got := rec.kinds(NodeFail); len(got) != 2 {
		t.Errorf("node-fail events %v", got)
	}
}

func TestSerialStopsAtFirstErrorAndKeepsOrder(t *testing.T) {
	var order []string
	p := Phase{Name: "join", Order: Serial, Nodes: nodes("cp2", "cp3", "cp4"), Run: func(_ context.Context, n string) error {
		order = append(order, n)
		if n == "cp3" {
			return errors.New("etcd not healthy")
		}
		return nil
	}}
	err := (&Engine{}).Run(context.Background(), []Phase{p})
	if err == nil || strings.Join(order, ",") != "cp2,cp3" || !strings.Contains(err.Error(), "cp3: etcd not healthy") {
		t.Fatalf("order %v err %v", order, err)
	}
}

func TestDoneSkipsAndCompletedIsTold(t *testing.T) {
	var completed []string
	p := Phase{Name: "os", Order: Parallel, Nodes: nodes("a"),
		Done: func(context.Context, string) (bool, error) { return true, nil },
		Run: func(context.Context, string) error {
			t.Error("Run called although Done")
			return nil
		}}
	rec := &recorder{}
	eng := &Engine{Report: rec, Completed: func(ph, n string, _ time.Duration) { completed = append(completed, ph+"/"+n) }}
	if err := eng.Run(context.Background(), []Phase{p}); err != nil {
		t.Fatal(err)
	}
	if got := rec.kinds(NodeSkip); len(got) != 1 || len(completed) != 1 {
		t.Errorf("skips %v completed %v", got, completed)
	}
}

func TestSkipOnlyUntilAndUnknownNames(t *testing.T) {
	var ran []string
	mk := func(name string) Phase {
		return Phase{Name: name, Order: Local, Run: func(context.Context, string) error {
			ran = append(ran, name)
			return nil
		}}
	}
	list := []Phase{mk("connect"), mk("os"), mk("loadbalancer"), mk("init")}
	run := func(e *Engine) string {
		ran = nil
		if err := e.Run(context.Background(), list); err != nil {
			t.Fatal(err)
		}
		return strings.Join(ran, ",")
	}
	if got := run(&Engine{Skip: []string{"os"}}); got != "connect,loadbalancer,init" {
		t.Errorf("skip: %s", got)
	}
	if got := run(&Engine{Only: []string{"loadbalancer"}}); got != "loadbalancer" {
		t.Errorf("only: %s", got)
	}
	if got := run(&Engine{Until: "loadbalancer"}); got != "connect,os,loadbalancer" {
		t.Errorf("until: %s", got)
	}
	err := (&Engine{Skip: []string{"packagez"}}).Run(context.Background(), list)
	if err == nil || !strings.Contains(err.Error(), "unknown phase packagez; the phases are: connect, os, loadbalancer, init") {
		t.Errorf("unknown phase: %v", err)
	}
}

// TestNeedsDeriveTheOrder: a phase selected alone brings what it needs,
// transitively and in list order; skipping a needed phase, or needing a
// later one, fails before anything runs.
func TestNeedsDeriveTheOrder(t *testing.T) {
	var ran []string
	mk := func(name string, needs ...string) Phase {
		return Phase{Name: name, Order: Local, Needs: needs, Run: func(context.Context, string) error {
			ran = append(ran, name)
			return nil
		}}
	}
	list := []Phase{mk("nodes"), mk("connect", "nodes"), mk("facts", "connect"), mk("os", "facts"), mk("vip"), mk("init", "facts")}
	run := func(e *Engine) (string, error) {
		ran = nil
		err := e.Run(context.Background(), list)
		return strings.Join(ran, ","), err
	}
	for _, tc := range []struct {
		e    Engine
		want string
	}{
		{Engine{Only: []string{"init"}}, "nodes,connect,facts,init"},
		{Engine{Only: []string{"vip"}}, "vip"},
		{Engine{Only: []string{"os", "init"}}, "nodes,connect,facts,os,init"},
		{Engine{Skip: []string{"vip"}}, "nodes,connect,facts,os,init"},
		{Engine{Only: []string{"init"}, Until: "facts"}, "nodes,connect,facts"},
	} {
		if got, err := run(&tc.e); err != nil || got != tc.want {
			t.Errorf("%+v: ran %q, %v; want %q", tc.e, got, err, tc.want)
		}
	}
	got, err := run(&Engine{Skip: []string{"connect"}})
	if err == nil || got != "" || !strings.Contains(err.Error(), "phase facts needs phase connect, which --skip-phases leaves out") {
		t.Errorf("skipping a needed phase: ran %q, %v", got, err)
	}
	backwards := []Phase{mk("os", "facts"), mk("facts")}
	if err := (&Engine{}).Run(context.Background(), backwards); err == nil || !strings.Contains(err.Error(), "runs after it") {
		t.Errorf("a need that comes later: %v", err)
	}
}

// TestErrorsNameTheNodeOnce: the engine names a failing node, unless the
// error (from the SSH transport, say) already does.
func TestErrorsNameTheNodeOnce(t *testing.T) {
	for _, tc := range []struct{ err, want string }{
		{"exit status 1", "phase init: cp1: exit status 1"},
		{"cp1: `kubeadm init` exited with status 1", "phase init: cp1: `kubeadm init` exited with status 1"},
		{"installing packages: cp1: `apt-get` exited with status 100", "phase init: installing packages: cp1: `apt-get` exited with status 100"},
		{"reading the CA from cp10: refused", "phase init: cp1: reading the CA from cp10: refused"},
	} {
		p := Phase{Name: "init", Nodes: func() []string { return []string{"cp1"} },
			Run: func(context.Context, string) error { return errors.New(tc.err) }}
		err := (&Engine{}).Run(context.Background(), []Phase{p})
		if err == nil || err.Error() != tc.want {
			t.Errorf("%q: got %v, want %q", tc.err, err, tc.want)
		}
	}
}

func TestLimitBoundsConcurrency(t *testing.T) {
	var cur, peak atomic.Int32
	release := make(chan struct{})
	var once sync.Once
	var names []string
	for i := 0; i < 12; i++ {
		names = append(names, string(rune('a'+i)))
	}
	p := Phase{Name: "x", Order: Parallel, Nodes: nodes(names...), Run: func(ctx context.Context, _ string) error {
		c := cur.Add(1)
		for {
			old := peak.Load()
			if c <= old || peak.CompareAndSwap(old, c) {
				break
			}
		}
		if c == 3 {
			once.Do(func() { close(release) })
		}
		select {
		case <-release:
		case <-ctx.Done():
		}
		cur.Add(-1)
		return nil
	}}
	if err := (&Engine{Limit: 3}).Run(context.Background(), []Phase{p}); err != nil {
		t.Fatal(err)
	}
	if peak.Load() != 3 {
		t.Errorf("peak concurrency %d, want 3", peak.Load())
	}
}

func TestDryRunDescribesAndRunsNothing(t *testing.T) {
	var buf bytes.Buffer
	p := Phase{Name: "loadbalancer", Order: Parallel, Nodes: nodes("cp1"),
		Run:      func(context.Context, string) error { t.Error("ran in dry run"); return nil },
		Describe: func(n string) []string { return []string{"write /etc/haproxy/haproxy.cfg"} }}
	if err := (&Engine{DryRun: true, Report: NewPlain(&buf, false)}).Run(context.Background(), []Phase{p}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "loadbalancer cp1 would:\n      write /etc/haproxy/haproxy.cfg") {
		t.Errorf("dry run output:\n%s", buf.String())
	}
}

func TestJSONEventsAreOnePerLine(t *testing.T) {
	var buf bytes.Buffer
	p := Phase{Name: "os", Order: Parallel, Nodes: nodes("a", "b"), Run: func(context.Context, string) error { return nil }}
	if err := (&Engine{Report: NewJSON(&buf)}).Run(context.Background(), []Phase{p}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	kinds := map[Kind]int{}
	for _, l := range lines {
		var e Event
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if e.Time.IsZero() {
			t.Errorf("event without time: %s", l)
		}
		kinds[e.Kind]++
	}
	if kinds[PhaseStart] != 1 || kinds[NodeDone] != 2 || kinds[PhaseDone] != 1 || kinds[RunDone] != 1 {
		t.Errorf("event counts %v", kinds)
	}
}

func TestLiveViewDrawsEveryNode(t *testing.T) {
	var buf syncbuf.Buffer
	l := NewLive(&buf, 100)
	p := Phase{Name: "os", Title: "prepare", Order: Parallel, Nodes: nodes("alpha", "beta"), Run: func(_ context.Context, n string) error {
		if n == "beta" {
			return errors.New("no swapoff")
		}
		return nil
	}}
	_ = (&Engine{Report: l}).Run(context.Background(), []Phase{p})
	l.Close()
	out := buf.String()
	for _, want := range []string{"✗ os  prepare", "✓ alpha", "✗ beta", "no swapoff"} {
		if !strings.Contains(out, want) {
			t.Errorf("live output lacks %q:\n%q", want, out)
		}
	}
}
