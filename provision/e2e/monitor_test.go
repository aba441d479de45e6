//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/labctl/lab/internal/e2etest"
)

// monitor watches who holds the VIP, every ~20 ms, on every node of a lab.
// A docker exec per node takes tens of milliseconds, far too slow for
// that, so it reads each node's addresses straight from the kernel:
// netlink inside the network namespace of the node's PID 1.
//
// A node whose container is not running holds nothing (its namespace is
// gone with it). A container's PID is checked against the process start
// time before its namespace is trusted, so a recycled PID is never read as
// the node; the PID is looked up again (docker inspect) when it goes stale.
type monitor struct {
	lab  *testLab
	vip  netip.Addr
	tick time.Duration

	mu      sync.Mutex
	procs   map[string]proc // node → its container's PID 1
	holders []string        // the latest sample
	changes []change        // every change of the holder set
	doubles []change        // samples with two or more holders
	polls   int

	stop context.CancelFunc
	done chan struct{}
}

type proc struct {
	pid   int
	start string // field 22 of /proc/PID/stat
}

// change is a sample whose holder set differs from the one before.
type change struct {
	at      time.Time
	holders []string
}

func (c change) String() string {
	return fmt.Sprintf("%s %v", c.at.Format("15:04:05.000"), c.holders)
}

// startMonitor starts watching the lab's VIP until the test ends.
func startMonitor(t *testing.T, l *testLab) *monitor {
	t.Helper()
	requireRoot(t)
	vip, _ := l.vip()
	ctx, cancel := context.WithCancel(context.Background())
	m := &monitor{lab: l, vip: vip, tick: 20 * time.Millisecond, procs: map[string]proc{}, stop: cancel, done: make(chan struct{})}
	for _, n := range l.nodes() {
		m.refresh(ctx, n)
	}
	go m.run(ctx)
	go m.refresher(ctx)
	t.Cleanup(m.close)
	return m
}

func (m *monitor) close() {
	m.stop()
	<-m.done
}

func (m *monitor) run(ctx context.Context) {
	defer close(m.done)
	tick := time.NewTicker(m.tick)
	defer tick.Stop()
	for {
		m.sample()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// sample reads every node once and records the holder set.
func (m *monitor) sample() {
	m.mu.Lock()
	procs := make(map[string]proc, len(m.procs))
	for n, p := range m.procs {
		procs[n] = p
	}
	m.mu.Unlock()

	var holders []string
	var stale []string
	for _, n := range m.lab.nodes() {
		p, ok := procs[n]
		if !ok || p.pid == 0 {
			continue
		}
		holds, alive := m.holds(p)
		if !alive {
			stale = append(stale, n)
			continue
		}
		if holds {
			holders = append(holders, n)
		}
	}
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, n := range stale {
		if m.procs[n] == procs[n] {
			m.procs[n] = proc{}
		}
	}
	m.polls++
	if m.polls == 1 || !slices.Equal(holders, m.holders) {
		m.changes = append(m.changes, change{now, holders})
	}
	if len(holders) > 1 {
		m.doubles = append(m.doubles, change{now, holders})
	}
	m.holders = holders
}

// holds reads whether the namespace of p holds the VIP; alive is false when
// p is no longer the process it was.
func (m *monitor) holds(p proc) (holds, alive bool) {
	ns, err := netns.GetFromPid(p.pid)
	if err != nil {
		return false, false
	}
	defer ns.Close()
	// The namespace handle is open: if p is still the same process now,
	// it is p's namespace.
	if startTime(p.pid) != p.start {
		return false, false
	}
	h, err := netlink.NewHandleAt(ns, syscall.NETLINK_ROUTE)
	if err != nil {
		return false, true
	}
	defer h.Close()
	addrs, err := h.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return false, true
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == m.vip {
			return true, true
		}
	}
	return false, true
}

// refresher looks up the PIDs of nodes whose process went away (stopped,
// killed, restarted), a few times a second.
func (m *monitor) refresher(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(150 * time.Millisecond):
		}
		m.mu.Lock()
		var stale []string
		for _, n := range m.lab.nodes() {
			if m.procs[n].pid == 0 {
				stale = append(stale, n)
			}
		}
		m.mu.Unlock()
		for _, n := range stale {
			m.refresh(ctx, n)
		}
	}
}

// refresh asks Docker for the PID of node's container.
func (m *monitor) refresh(ctx context.Context, node string) {
	out, err := m.lab.cli.Run(ctx, "inspect", "--format", "{{.State.Pid}}", m.lab.container(node))
	if err != nil {
		return
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	p := proc{}
	if pid > 0 {
		p = proc{pid: pid, start: startTime(pid)}
		if p.start == "" {
			p = proc{}
		}
	}
	m.mu.Lock()
	m.procs[node] = p
	m.mu.Unlock()
}

// startTime is the start time of process pid (clock ticks since boot),
// "" when there is no such process.
func startTime(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	// The command name may hold spaces; fields count from after ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return ""
	}
	return f[19] // field 22 overall
}

// current is the latest sample.
func (m *monitor) current() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.holders)
}

// doubleHolders returns the samples that saw two or more holders.
func (m *monitor) doubleHolders() []change {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.doubles)
}

// changesSince returns the changes of the holder set after t.
func (m *monitor) changesSince(t time.Time) []change {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []change
	for _, c := range m.changes {
		if c.at.After(t) {
			out = append(out, c)
		}
	}
	return out
}

// sampleCount is how many samples the monitor has taken.
func (m *monitor) sampleCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.polls
}

// waitSamples waits until the monitor has taken n more samples after now,
// so that a later read reflects the state after now.
func (m *monitor) waitSamples(ctx context.Context, n int) {
	want := m.sampleCount() + n
	e2etest.WaitFor(ctx, time.Minute, 5*time.Millisecond, func() bool { return m.sampleCount() >= want })
}

// waitSingle waits until the monitor sees exactly one holder and every
// node's PID is known, and returns the holder.
func (m *monitor) waitSingle(ctx context.Context, timeout time.Duration) (string, bool) {
	var h []string
	ok := e2etest.WaitFor(ctx, timeout, 10*time.Millisecond, func() bool {
		m.mu.Lock()
		known := true
		for _, n := range m.lab.nodes() {
			if m.procs[n].pid == 0 {
				known = false
			}
		}
		m.mu.Unlock()
		h = m.current()
		return known && len(h) == 1
	})
	if !ok {
		return "", false
	}
	return h[0], true
}
