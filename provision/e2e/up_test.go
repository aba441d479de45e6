//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/labctl/lab/internal/e2etest"
	"github.com/labctl/lab/provision"
	"github.com/labctl/lab/templates"
)

// TestUpToVIP brings the CI lab's shape (3 control planes, 1 worker) up
// through the vip phase and checks the result from outside lab: one node
// holds the VIP, HAProxy answers on every control plane, and the VIP's
// port accepts connections from the host.
func TestUpToVIP(t *testing.T) {
	t.Parallel()
	l := newLab(t, labSpec{prefix: "up", cps: 3, workers: 1})
	ctx := e2etest.Context(t, 8*time.Minute)
	l.mustUp(t, ctx)

	holder := l.waitOneHolder(t, ctx, 30*time.Second)
	t.Logf("%s holds the VIP", holder)
	vip, port := l.vip()
	for _, n := range l.loadBalancers() {
		if err := tcpOpen(l.nodeIP(n), port, 3*time.Second); err != nil {
			t.Errorf("HAProxy on %s (%s:%d) does not answer from the host: %v", n, l.nodeIP(n), port, err)
		}
	}
	if err := tcpOpen(vip, port, 3*time.Second); err != nil {
		t.Errorf("the VIP %s:%d does not answer from the host: %v", vip, port, err)
	}
	// The worker is no load balancer: it must never hold the VIP.
	for _, n := range l.lab.Workers() {
		if n.Name == holder {
			t.Errorf("worker %s holds the VIP", n.Name)
		}
	}

	// lab status agrees with what the nodes' kernels say.
	st, err := provision.Status(ctx, l.lab, l.options(nil))
	if err != nil {
		t.Fatalf("lab status: %v", err)
	}
	if !slices.Equal(st.VIPHolders, []string{holder}) {
		t.Errorf("lab status says %v hold the VIP; the nodes say %s", st.VIPHolders, holder)
	}
	for _, n := range st.Nodes {
		if !n.Reachable || n.Machine != "running" {
			t.Errorf("lab status: node %s reachable=%v machine=%s (%s)", n.Name, n.Reachable, n.Machine, n.Error)
		}
		if !slices.Contains(n.Phases, "loadbalancer") && slices.Contains(l.loadBalancers(), n.Name) {
			t.Errorf("lab status: node %s has not completed loadbalancer: %v", n.Name, n.Phases)
		}
	}
}

// managedFiles are the files the phases through vip write; the idempotency
// test watches them (and /etc/hosts, whose lab block the os phase owns).
var managedFiles = []string{
	templates.HAProxyConfigPath, templates.KeepalivedConfigPath, templates.CheckScriptPath,
	templates.ContainerdConfigPath, templates.CrictlConfigPath,
	templates.SysctlPath, templates.ModulesPath,
	"/etc/hosts", "/etc/hostname", "/etc/fstab",
}

// managedUnits are the services the phases through vip (re)start.
var managedUnits = []string{"haproxy", "keepalived", "containerd"}

// snapshotScript prints, per line, each managed file's inode, mtime (ns),
// size and hash, and each unit's main PID and activation time.
func snapshotScript() string {
	var b strings.Builder
	fmt.Fprintf(&b, "for f in %s; do\n", strings.Join(managedFiles, " "))
	b.WriteString(`  if [ -e "$f" ]; then echo "file $f $(stat -c '%i %.9Y %s' "$f") $(sha256sum < "$f" | cut -c1-16)"; else echo "file $f absent"; fi` + "\n")
	b.WriteString("done\n")
	fmt.Fprintf(&b, "for u in %s; do\n", strings.Join(managedUnits, " "))
	b.WriteString(`  echo "unit $u $(systemctl show -p ActiveState -p MainPID -p ExecMainStartTimestampMonotonic -p ActiveEnterTimestampMonotonic -p NRestarts $u | sort | tr '\n' ' ')"` + "\n")
	b.WriteString("done\n")
	return b.String()
}

// snapshot records, per node, what snapshotScript prints, keyed by file
// or unit.
func (l *testLab) snapshot(t testing.TB, ctx context.Context) map[string]map[string]string {
	t.Helper()
	out := map[string]map[string]string{}
	for _, n := range l.nodes() {
		out[n] = map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(l.mustExec(t, ctx, n, snapshotScript())), "\n") {
			f := strings.SplitN(line, " ", 3)
			if len(f) == 3 {
				out[n][f[0]+" "+f[1]] = f[2]
			}
		}
	}
	return out
}

// TestIdempotentRerun runs up a second time and proves it changed nothing
// on the nodes: no managed file was rewritten (same inode, mtime, content)
// and no service restarted (same main PID and activation time). Its
// duration is a figure (goal: under 5 s for this lab).
func TestIdempotentRerun(t *testing.T) {
	t.Parallel()
	l := newLab(t, labSpec{prefix: "idem", cps: 3, workers: 1})
	ctx := e2etest.Context(t, 8*time.Minute)
	l.mustUp(t, ctx)
	l.waitOneHolder(t, ctx, 30*time.Second)

	before := l.snapshot(t, ctx)
	// The snapshot must be of something: what the first run set up.
	for _, n := range l.loadBalancers() {
		for _, key := range []string{"file " + templates.HAProxyConfigPath, "file " + templates.KeepalivedConfigPath} {
			if strings.HasSuffix(before[n][key], "absent") {
				t.Fatalf("%s: %s missing after the first run", n, key)
			}
		}
		for _, u := range []string{"haproxy", "keepalived"} {
			if !strings.Contains(before[n]["unit "+u], "ActiveState=active") {
				t.Fatalf("%s: %s not active after the first run: %s", n, u, before[n]["unit "+u])
			}
		}
	}

	start := time.Now()
	ev := l.mustUp(t, ctx)
	took := time.Since(start)
	after := l.snapshot(t, ctx)

	for _, n := range l.nodes() {
		for key, was := range before[n] {
			if now := after[n][key]; now != was {
				t.Errorf("%s: the second run changed %s:\n  before %s\n  after  %s", n, key, was, now)
			}
		}
	}
	if did := notSkipped(ev.All()); len(did) > 0 {
		t.Errorf("the second run did work instead of skipping: %v", did)
	}
	figure(t, map[string]any{"figure": "rerun", "seconds": seconds(took), "nodes": len(l.nodes()), "goal_s": 5})
}
