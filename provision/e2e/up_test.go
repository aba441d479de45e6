//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/labctl/lab/internal/e2etest"
	"github.com/labctl/lab/provision"
	"github.com/labctl/lab/provision/workflow"
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

// dryRun runs lab up --dry-run (through the vip phase) and returns its
// events; a dry run never fails for what it finds.
func (l *testLab) dryRun(t *testing.T, ctx context.Context) []workflow.Event {
	t.Helper()
	ev := &e2etest.Events{}
	o := l.options(ev)
	o.DryRun = true
	if err := provision.Up(ctx, l.lab, o); err != nil {
		t.Fatalf("lab up --dry-run: %v\n%s", err, ev.Failures())
	}
	return ev.All()
}

// planned is what a dry run says phase would do on node, or nil when it
// said the node is done (or said nothing).
func planned(evs []workflow.Event, ph, node string) []string {
	for _, e := range evs {
		if e.Kind == workflow.NodePlan && e.Phase == ph && e.Node == node {
			return e.Lines
		}
	}
	return nil
}

// dirSnapshot lists every file under dir with its size, mode and
// modification time, or "absent".
func dirSnapshot(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %d %v %s\n", path, fi.Size(), fi.Mode(), fi.ModTime().Format(time.RFC3339Nano))
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return "absent"
	}
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestIdempotentRerun runs up a second time and proves it changed nothing
// on the nodes: no managed file was rewritten (same inode, mtime, content)
// and no service restarted (same main PID and activation time). Its
// duration is a figure (goal: under 5 s for this lab).
func TestIdempotentRerun(t *testing.T) {
	t.Parallel()
	l := newLab(t, labSpec{prefix: "idem", cps: 3, workers: 1})
	ctx := e2etest.Context(t, 8*time.Minute)

	// A dry run before anything exists: every node would be created, and
	// nothing is written, not even the state directory.
	plan := l.dryRun(t, ctx)
	if lines := planned(plan, "nodes", ""); len(lines) != len(l.nodes()) || !strings.HasPrefix(lines[0], "create ") {
		t.Errorf("dry run of a new lab: the nodes phase would %q, want to create %d nodes", lines, len(l.nodes()))
	}
	if _, err := os.Stat(l.stateDir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a dry run made the state directory: %v", err)
	}

	l.mustUp(t, ctx)
	l.waitOneHolder(t, ctx, 30*time.Second)

	// A dry run of the converged lab connects, checks and finds every
	// node of every phase that checks its work done, and writes nothing
	// in the state directory.
	stateBefore := dirSnapshot(t, l.stateDir())
	plan = l.dryRun(t, ctx)
	for _, ph := range []string{"os", "packages", "loadbalancer"} {
		done := 0
		for _, e := range plan {
			if e.Phase == ph && e.Kind == workflow.NodePlan {
				t.Errorf("dry run of the converged lab: %s on %s would: %q", ph, e.Node, e.Lines)
			}
			if e.Phase == ph && e.Kind == workflow.NodeSkip && e.Message == "done" {
				done++
			}
		}
		if done == 0 {
			t.Errorf("dry run: no node reported done in phase %s", ph)
		}
	}
	if lines := planned(plan, "nodes", ""); lines != nil {
		t.Errorf("dry run of the converged lab: the nodes phase would %q", lines)
	}
	if after := dirSnapshot(t, l.stateDir()); after != stateBefore {
		t.Errorf("a dry run changed the state directory:\nbefore:\n%s\nafter:\n%s", stateBefore, after)
	}

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
