//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/labctl/lab/internal/e2etest"
	"github.com/labctl/lab/provision"
	"github.com/labctl/lab/provision/labfile"
	"github.com/labctl/lab/provision/workflow"
	"github.com/labctl/lab/templates"
	"github.com/labctl/lab/templates/nodefiles"
)

// buildLab builds the lab command into a temporary directory.
func buildLab(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "lab")
	out, err := exec.Command(goBin, "build", "-o", bin, "github.com/labctl/lab/cmd/lab").CombinedOutput()
	if err != nil {
		t.Fatalf("go build ./cmd/lab: %v\n%s", err, out)
	}
	return bin
}

// cliRun is one run of the lab command.
type cliRun struct {
	events []workflow.Event
	stderr string
	err    error
	took   time.Duration
	killed bool // SIGKILLed by the test before it ended
}

// lastPhase is the phase the run was in when it ended.
func (r cliRun) lastPhase() string {
	last := "(none)"
	for _, ev := range r.events {
		if ev.Kind == workflow.PhaseStart {
			last = ev.Phase
		}
	}
	return last
}

// cliCommand is `lab up FILE --until vip --state-dir ROOT --output json`
// with the test's Docker daemon and no user settings.
func (l *testLab) cliCommand(ctx context.Context, bin string, args ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	full := append([]string{"up", l.file, "--until", "vip", "--state-dir", l.stateRoot, "--output", "json"}, args...)
	cmd := exec.CommandContext(ctx, bin, full...)
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+l.stateRoot+"/config")
	if l.cli.Host != "" {
		cmd.Env = append(cmd.Env, "DOCKER_HOST="+l.cli.Host)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	return cmd, &stdout, &stderr
}

// cliUp runs lab up to its end. With killAfter > 0 it sends SIGKILL to
// the lab process at that point if it still runs.
func (l *testLab) cliUp(t testing.TB, ctx context.Context, bin string, killAfter time.Duration) cliRun {
	t.Helper()
	cmd, stdout, stderr := l.cliCommand(ctx, bin)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var r cliRun
	if killAfter > 0 {
		select {
		case r.err = <-exited:
		case <-time.After(killAfter):
			// Only the lab process is killed, as `kill -9 PID` would:
			// docker commands it started finish on their own.
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatalf("kill lab: %v", err)
			}
			r.killed = true
			r.err = <-exited
		}
	} else {
		r.err = <-exited
	}
	r.took = time.Since(start)
	r.stderr = stderr.String()
	r.events = parseEvents(t, stdout.Bytes(), r.killed)
	return r
}

// parseEvents reads --output json; a killed run may end in half a line.
func parseEvents(t testing.TB, out []byte, partial bool) []workflow.Event {
	t.Helper()
	var evs []workflow.Event
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev workflow.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			if partial {
				continue
			}
			t.Fatalf("lab --output json printed a line that is not an event: %q: %v", sc.Text(), err)
		}
		evs = append(evs, ev)
	}
	return evs
}

// wipe deletes the lab's node containers, their volumes and the state
// directory, keeping the network (the test's subnet reservation), so that
// the next run starts from nothing.
func (l *testLab) wipe(t testing.TB, ctx context.Context) {
	t.Helper()
	filter := "label=io.labctl.lab=" + l.name()
	if ids := strings.Fields(l.docker(t, ctx, "ps", "--all", "--quiet", "--filter", filter)); len(ids) > 0 {
		l.docker(t, ctx, append([]string{"rm", "--force", "--volumes"}, ids...)...)
	}
	if ids := strings.Fields(l.docker(t, ctx, "volume", "ls", "--quiet", "--filter", filter)); len(ids) > 0 {
		l.docker(t, ctx, append([]string{"volume", "rm", "--force"}, ids...)...)
	}
	if err := os.RemoveAll(l.stateDir()); err != nil {
		t.Fatal(err)
	}
}

// checkConverged proves the lab is where a clean run leaves it, looking
// from outside lab: every node's files byte for byte and mode for mode as
// rendered, the services running, each started after its config file was
// last written (so it runs what is on disk), and exactly one VIP holder.
// The caller then proves the next run is a no-op.
func (l *testLab) checkConverged(t testing.TB, ctx context.Context) {
	t.Helper()
	for i := range l.lab.Nodes {
		n := &l.lab.Nodes[i]
		files := l.nodeFiles(t, ctx, n)
		var script strings.Builder
		want := map[string]string{}
		for _, f := range files {
			sum := sha256.Sum256(f.Content)
			want[f.Path] = fmt.Sprintf("%s %o", hex.EncodeToString(sum[:]), f.Mode.Perm())
			fmt.Fprintf(&script, "f=%s; if [ -f $f ]; then echo \"$f $(sha256sum < $f | cut -d' ' -f1) $(stat -c %%a $f)\"; else echo \"$f absent\"; fi\n", f.Path)
		}
		have := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(l.mustExec(t, ctx, n.Name, script.String())), "\n") {
			p, rest, _ := strings.Cut(line, " ")
			have[p] = rest
		}
		for p, w := range want {
			if have[p] != w {
				t.Errorf("%s: %s is %q, rendered %q", n.Name, p, have[p], w)
			}
		}
		configs := map[string]string{} // unit → the config it reads
		if n.HasRole("control-plane") || n.HasRole("worker") {
			configs["containerd"] = templates.ContainerdConfigPath
		}
		if slices.Contains(l.loadBalancers(), n.Name) {
			configs["haproxy"] = templates.HAProxyConfigPath
			configs["keepalived"] = templates.KeepalivedConfigPath
		}
		for unit, cfg := range configs {
			// Seconds since the epoch: the unit's main process start and
			// the config's last write. A unit started before its config
			// was written runs an older one.
			out, err := l.exec(ctx, n.Name, fmt.Sprintf(
				`systemctl is-active --quiet %[1]s || { echo inactive; exit 0; }; echo "$(date -d "$(systemctl show -p ExecMainStartTimestamp --value %[1]s)" +%%s) $(stat -c %%Y %[2]s)"`, unit, cfg))
			if err != nil {
				t.Errorf("%s: %s: %v", n.Name, unit, err)
				continue
			}
			f := strings.Fields(out)
			if len(f) != 2 {
				t.Errorf("%s: %s is not running (%s)", n.Name, unit, strings.TrimSpace(out))
				continue
			}
			started, _ := strconv.ParseInt(f[0], 10, 64)
			written, _ := strconv.ParseInt(f[1], 10, 64)
			if started < written {
				t.Errorf("%s: %s started %ds before %s was last written: it runs an older configuration, and no run restarted it",
					n.Name, unit, written-started, cfg)
			}
		}
	}
	l.waitOneHolder(t, ctx, 30*time.Second)
}

// nodeInterface finds, with ip addr, the interface holding node's address.
// nodeFiles are the files the phases these tests run (os, packages,
// loadbalancer) install on node, rendered with its real interface.
func (l *testLab) nodeFiles(t testing.TB, ctx context.Context, n *labfile.Node) []templates.File {
	t.Helper()
	in := nodefiles.Inputs{Facts: templates.Facts{Interface: l.nodeInterface(t, ctx, n.Name), Container: true}}
	var files []templates.File
	for _, phase := range []string{nodefiles.OS, nodefiles.Packages, nodefiles.LoadBalancer} {
		fs, err := nodefiles.ForPhase(l.lab, n, phase, in)
		if err != nil {
			t.Fatalf("%s: %v", n.Name, err)
		}
		files = append(files, fs...)
	}
	return files
}

func (l *testLab) nodeInterface(t testing.TB, ctx context.Context, node string) string {
	t.Helper()
	out := l.mustExec(t, ctx, node, "ip -4 -o addr show")
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		if p, err := netip.ParsePrefix(f[3]); err == nil && p.Addr() == l.nodeIP(node) {
			return strings.Split(f[1], "@")[0]
		}
	}
	t.Fatalf("%s: no interface holds %s:\n%s", node, l.nodeIP(node), out)
	return ""
}

// TestResume kills `lab up` with SIGKILL at random points, LAB_RESUME_RUNS
// times (default 10), and proves that the next run always converges to the
// same state and that the run after that is a no-op. Runs alternate
// between starting from nothing (no containers, no state: kills land in
// node creation as often as in provisioning) and from nodes that lab
// reset left (kills land in the os, loadbalancer and vip phases). Each
// kill point is drawn uniformly over the duration of an uninterrupted run
// from the same start, with a seeded generator: the seed is logged, and
// LAB_RESUME_SEED replays the points.
func TestResume(t *testing.T) {
	t.Parallel()
	bin := buildLab(t)
	l := newLab(t, labSpec{prefix: "res", cps: 2, workers: 1})
	ctx := e2etest.Context(t, 20*time.Minute)

	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("LAB_RESUME_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("LAB_RESUME_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("kill points drawn with seed %d (LAB_RESUME_SEED=%d replays them)", seed, seed)
	rnd := rand.New(rand.NewPCG(seed, 0))
	runs := e2etest.EnvInt(t, "LAB_RESUME_RUNS", 10)

	reset := func() {
		ev := &e2etest.Events{}
		if err := provision.Reset(ctx, l.lab, l.options(ev)); err != nil {
			t.Fatalf("lab reset: %v\n%s", err, ev.Failures())
		}
	}
	starts := []struct {
		name    string
		prepare func()
		full    time.Duration // an uninterrupted run from this start
	}{
		{name: "from nothing", prepare: func() { l.wipe(t, ctx) }},
		{name: "from reset nodes", prepare: reset},
	}
	for i := range starts {
		starts[i].prepare()
		r := l.cliUp(t, ctx, bin, 0)
		if r.err != nil {
			t.Fatalf("lab up %s: %v\n%s", starts[i].name, r.err, r.stderr)
		}
		starts[i].full = r.took
		t.Logf("an uninterrupted run %s: %v", starts[i].name, r.took.Round(time.Millisecond))
		l.checkConverged(t, ctx)
	}

	var killed, converged int
	var points []string
	for i := range runs {
		st := starts[i%len(starts)]
		st.prepare()
		at := time.Duration(rnd.Int64N(int64(st.full)))
		k := l.cliUp(t, ctx, bin, at)
		where := "completed before the kill"
		if k.killed {
			killed++
			where = "in phase " + k.lastPhase()
		} else if k.err != nil {
			t.Fatalf("run %d failed before its kill point: %v\n%s", i+1, k.err, k.stderr)
		} else {
			// An uninterrupted run from this start after all: runs got
			// faster (a busy machine, a cold cache at first), so later
			// kill points are drawn over this duration instead.
			starts[i%len(starts)].full = k.took
		}
		what := fmt.Sprintf("%s, killed at %v %s", st.name, at.Round(time.Millisecond), where)
		points = append(points, what)

		again := l.cliUp(t, ctx, bin, 0)
		if again.err != nil {
			t.Fatalf("run %d (%s): the next run failed: %v\n%s", i+1, what, again.err, again.stderr)
		}
		l.checkConverged(t, ctx)
		noop := l.cliUp(t, ctx, bin, 0)
		if noop.err != nil {
			t.Fatalf("run %d (%s): the run after convergence failed: %v\n%s", i+1, what, noop.err, noop.stderr)
		}
		if did := notSkipped(noop.events); len(did) > 0 {
			t.Errorf("run %d (%s): the run after convergence did work: %v", i+1, what, did)
		}
		if !hasEvent(noop.events, workflow.RunDone) {
			t.Errorf("run %d: the no-op run printed no run-done event", i+1)
		}
		if t.Failed() {
			t.FailNow()
		}
		converged++
		t.Logf("run %d: %s; resumed in %v; next run a no-op in %v",
			i+1, what, again.took.Round(time.Millisecond), noop.took.Round(time.Millisecond))
	}
	figure(t, map[string]any{"figure": "resume", "runs": runs, "killed_mid_run": killed, "converged": converged,
		"seed": seed, "full_run_s": seconds(starts[0].full), "full_run_from_reset_s": seconds(starts[1].full), "kill_points": points})
}

// TestResumeBetweenInstallAndRestart puts nodes in the state a `lab up`
// killed at the worst moment leaves: lab's new configs installed but the
// services still running the ones from before (containerd, HAProxy), or
// not started (Keepalived). That window is milliseconds wide, so random
// kill points rarely hit it; here it is made on purpose. The next run must
// converge: every service runs the configuration on disk.
func TestResumeBetweenInstallAndRestart(t *testing.T) {
	t.Parallel()
	l := newLab(t, labSpec{prefix: "win", cps: 2})
	ctx := e2etest.Context(t, 10*time.Minute)
	o := l.options(&e2etest.Events{})
	o.Until = "os"
	if err := provision.Up(ctx, l.lab, o); err != nil {
		t.Fatalf("lab up --until os: %v", err)
	}
	for i := range l.lab.Nodes {
		n := &l.lab.Nodes[i]
		files := l.nodeFiles(t, ctx, n)
		for _, f := range files {
			switch f.Path {
			case templates.ContainerdConfigPath, templates.CrictlConfigPath,
				templates.HAProxyConfigPath, templates.KeepalivedConfigPath, templates.CheckScriptPath:
			default:
				continue
			}
			// What the killed run did: the file in place, no restart.
			script := fmt.Sprintf("mkdir -p $(dirname %[1]s) && cat > %[1]s.new && chmod %[2]o %[1]s.new && mv %[1]s.new %[1]s", f.Path, f.Mode.Perm())
			if _, err := l.cli.RunWithInput(ctx, bytes.NewReader(f.Content), "exec", "-i", l.container(n.Name), "sh", "-c", script); err != nil {
				t.Fatalf("%s: install %s: %v", n.Name, f.Path, err)
			}
		}
		l.mustExec(t, ctx, n.Name, "systemctl is-active containerd haproxy")
	}
	// An uninterrupted run takes seconds; 90 s cut the vip phase's own
	// 2-minute wait short when it cannot succeed.
	uctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	ev, err := l.up(uctx)
	if err != nil {
		t.Errorf("the run after the interrupted one failed: %v\n%s", err, ev.Failures())
	}
	l.checkConverged(t, ctx)
}

func hasEvent(evs []workflow.Event, k workflow.Kind) bool {
	for _, ev := range evs {
		if ev.Kind == k {
			return true
		}
	}
	return false
}
