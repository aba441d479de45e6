//go:build e2e

package e2e

import (
	"context"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/labctl/lab/internal/e2etest"
	"github.com/labctl/lab/internal/tooltest"
)

// flapWindow is how long a returning node is watched for taking the VIP
// back: keepalived's vrrp_startup_delay (1.5 s in lab's template) and then
// several master-down intervals (3 × advert_int 0.1 s plus skew), with room
// to spare. It is an observation window, not a wait for something.
const flapWindow = 4 * time.Second

// failoverWay is one way of taking the VIP holder away.
type failoverWay struct {
	name string
	// args is the docker command, given the holder's container after it.
	args []string
}

// TestFailover takes the VIP holder away, LAB_FAILOVER_RUNS times (default
// 10) each way: a clean stop (docker stop: systemd shuts keepalived down,
// which gives the VIP up with a priority-0 advert) and a crash (docker
// kill: the node vanishes, its peers notice missing adverts). Each time it
// measures from the command until another node holds the VIP and VIP:port
// accepts TCP from the host. Then the old holder comes back and must not
// take the VIP back (nopreempt). A monitor samples every node every
// ~20 ms throughout; two holders at once, ever, fail the test.
func TestFailover(t *testing.T) {
	runs := e2etest.EnvInt(t, "LAB_FAILOVER_RUNS", 10)
	l := newLab(t, labSpec{prefix: "fo", cps: 3, workers: 1})
	ctx := e2etest.Context(t, 20*time.Minute)
	l.mustUp(t, ctx)
	m := startMonitor(t, l)

	ways := []failoverWay{
		{"stop", []string{"stop"}},
		{"crash", []string{"kill", "--signal", "KILL"}},
	}
	for _, way := range ways {
		var took, moved []time.Duration
		for i := range runs {
			r := l.failover(t, ctx, m, way)
			took = append(took, r.answered)
			moved = append(moved, r.moved)
			t.Logf("%s %d: %s → %s, VIP moved after %v, VIP:port answered after %v",
				way.name, i+1, r.from, r.to, r.moved.Round(time.Millisecond), r.answered.Round(time.Millisecond))
			figure(t, map[string]any{"figure": "failover", "way": way.name, "run": i + 1,
				"from": r.from, "to": r.to, "seconds": seconds(r.answered), "moved_s": seconds(r.moved)})
		}
		med, worst := stats(took)
		mmed, mworst := stats(moved)
		t.Logf("failover by %s over %d runs: median %v, worst %v (VIP moved: median %v, worst %v)",
			way.name, runs, med, worst, mmed, mworst)
		figure(t, map[string]any{"figure": "failover-summary", "way": way.name, "runs": runs,
			"median_s": seconds(med), "worst_s": seconds(worst),
			"moved_median_s": seconds(mmed), "moved_worst_s": seconds(mworst)})
	}
	if d := m.doubleHolders(); len(d) > 0 {
		t.Errorf("two nodes held the VIP at once in %d samples: %v", len(d), d)
	}
	t.Logf("monitor: %d samples", m.sampleCount())
}

type failoverResult struct {
	from, to string
	// moved is when the monitor first saw a single new holder; answered
	// is when VIP:port then accepted a TCP connection from the host.
	moved, answered time.Duration
}

// failover takes the current holder away one way, measures, brings it
// back and watches that the VIP stays where it went.
func (l *testLab) failover(t *testing.T, ctx context.Context, m *monitor, way failoverWay) failoverResult {
	t.Helper()
	vip, port := l.vip()
	old, ok := m.waitSingle(ctx, time.Minute)
	if !ok {
		t.Fatalf("no single VIP holder before the %s: %v", way.name, m.current())
	}
	if !e2etest.WaitFor(ctx, 30*time.Second, 20*time.Millisecond, func() bool { return tcpOpen(vip, port, 200*time.Millisecond) == nil }) {
		t.Fatalf("%s:%d does not answer before the %s", vip, port, way.name)
	}

	r := failoverResult{from: old}
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := l.cli.Run(ctx, append(append([]string{}, way.args...), l.container(old))...)
		done <- err
	}()
	ok = e2etest.WaitFor(ctx, 30*time.Second, 5*time.Millisecond, func() bool {
		h := m.current()
		if len(h) != 1 || h[0] == old {
			return false
		}
		if r.moved == 0 {
			r.moved = time.Since(start)
		}
		r.to = h[0]
		return tcpOpen(vip, port, 100*time.Millisecond) == nil
	})
	r.answered = time.Since(start)
	settled := time.Now()
	if err := <-done; err != nil {
		t.Fatalf("docker %s %s: %v", strings.Join(way.args, " "), old, err)
	}
	if !ok {
		t.Fatalf("after docker %s of %s, no other node took the VIP with %s:%d answering within 30s; holders now %v, changes %v",
			way.args[0], old, vip, port, m.current(), m.changesSince(start))
	}

	// The old holder comes back. Once its keepalived runs, watch that the
	// VIP stays put through its startup delay and election.
	l.docker(t, ctx, "start", l.container(old))
	l.waitActive(t, ctx, old, 2*time.Minute, "haproxy", "keepalived")
	e2etest.WaitFor(ctx, flapWindow, 20*time.Millisecond, func() bool { return len(m.changesSince(settled)) > 0 })
	m.waitSamples(ctx, 2)
	if c := m.changesSince(settled); len(c) > 0 {
		t.Fatalf("the VIP moved after it settled on %s when %s came back (%s): %v", r.to, old, way.name, c)
	}
	return r
}

// TestNoFalseFailoverUnderLoad saturates every CPU for 20 s and proves the
// VIP holder never changes meanwhile: VRRP adverts every 0.1 s must keep
// flowing while the machine is busy.
func TestNoFalseFailoverUnderLoad(t *testing.T) {
	l := newLab(t, labSpec{prefix: "load", cps: 3, workers: 1})
	ctx := e2etest.Context(t, 10*time.Minute)
	l.mustUp(t, ctx)
	m := startMonitor(t, l)
	holder, ok := m.waitSingle(ctx, time.Minute)
	if !ok {
		t.Fatalf("no single VIP holder: %v", m.current())
	}

	const load = 20 * time.Second
	start := time.Now()
	samples := m.sampleCount()
	idle0, total0 := cpuTimes(t)
	tool := saturate(t, ctx, load)
	idle1, total1 := cpuTimes(t)
	busy := 1 - float64(idle1-idle0)/float64(total1-total0)

	if c := m.changesSince(start); len(c) > 0 {
		t.Errorf("the VIP left %s while the CPUs were saturated: %v", holder, c)
	}
	if d := m.doubleHolders(); len(d) > 0 {
		t.Errorf("two nodes held the VIP at once in %d samples: %v", len(d), d)
	}
	vip, port := l.vip()
	if err := tcpOpen(vip, port, 3*time.Second); err != nil {
		t.Errorf("%s:%d does not answer after the load: %v", vip, port, err)
	}
	figure(t, map[string]any{"figure": "load", "tool": tool, "seconds": seconds(load),
		"cpu_busy": busy, "samples": m.sampleCount() - samples, "vip_changes": len(m.changesSince(start))})
}

// saturate keeps every CPU busy for d and returns the tool it used:
// stress-ng (what ../shared/ENVIRONMENT.md measured with; CI installs it),
// or, where it is missing and tools are not required, shell busy loops.
func saturate(t *testing.T, ctx context.Context, d time.Duration) string {
	t.Helper()
	n := runtime.NumCPU()
	if _, err := exec.LookPath("stress-ng"); err == nil {
		out, err := exec.CommandContext(ctx, "stress-ng", "--cpu", strconv.Itoa(n), "--timeout", strconv.Itoa(int(d.Seconds()))+"s", "--quiet").CombinedOutput()
		if err != nil {
			t.Fatalf("stress-ng: %v\n%s", err, out)
		}
		return "stress-ng"
	}
	if tooltest.Required() {
		t.Fatal("stress-ng not installed (apt-get install stress-ng)")
	}
	t.Logf("stress-ng not installed: %d shell busy loops instead", n)
	lctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var cmds []*exec.Cmd
	for range n {
		c := exec.CommandContext(lctx, "sh", "-c", "while :; do :; done")
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, c)
	}
	for _, c := range cmds {
		_ = c.Wait() // killed when lctx ends
	}
	return "sh"
}

// cpuTimes reads the machine's idle and total CPU time from /proc/stat.
func cpuTimes(t testing.TB) (idle, total uint64) {
	t.Helper()
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		t.Fatal(err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	for i, v := range f[1:] {
		n, _ := strconv.ParseUint(v, 10, 64)
		total += n
		if i == 3 || i == 4 { // idle, iowait
			idle += n
		}
	}
	return idle, total
}
