//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/labctl/lab/internal/e2etest"
	"github.com/labctl/lab/internal/tooltest"
	"github.com/labctl/lab/provision"
	"github.com/labctl/lab/provision/labfile"
	"github.com/labctl/lab/provision/provider/docker"
	"github.com/labctl/lab/provision/provider/docker/dockercli"
	"github.com/labctl/lab/provision/provider/docker/dockertest"
	"github.com/labctl/lab/provision/workflow"
)

// labSpec says what lab a test needs.
type labSpec struct {
	// prefix names the test in the lab's name (a few letters).
	prefix  string
	cps     int
	workers int
}

// testLab is one test's lab of container nodes, with its own name, subnet
// and state directory. It is deleted when the test ends, pass or fail.
type testLab struct {
	t         *testing.T
	cli       *dockercli.CLI
	image     string
	lab       *labfile.Lab
	yaml      []byte
	file      string // the lab file, for the CLI
	stateRoot string
	prov      *docker.Provider
}

// newLab reserves a subnet for a new lab and registers its deletion. The
// subnet is reserved by creating the lab's Docker network up front, labelled
// as the provider labels it (the provider keeps a network that is its lab's
// and has the lab's subnet): Docker refuses overlapping subnets atomically,
// so tests running at once, or a second run of the suite, never collide.
func newLab(t *testing.T, spec labSpec) *testLab {
	t.Helper()
	cli := dockertest.Docker(t)
	image := dockertest.NodeImage(t, cli)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	name := "e2e-" + spec.prefix + "-" + e2etest.RandomHex(t, 3)
	l := &testLab{t: t, cli: cli, image: image, stateRoot: t.TempDir()}
	// Registered before anything exists, so that whatever the test leaves
	// (network, containers, volumes) goes.
	t.Cleanup(l.teardown)
	e2etest.ReserveSubnet(t, ctx, cli, "10.252", func(octet int) *labfile.Lab {
		l.yaml = []byte(labYAML(name, image, octet, spec.cps, spec.workers))
		lab, _, err := labfile.Parse(name+".yaml", l.yaml)
		if err != nil {
			t.Fatalf("lab file: %v\n%s", err, l.yaml)
		}
		l.lab = lab
		return lab
	})
	l.file = l.stateRoot + "/" + name + ".yaml"
	if err := os.WriteFile(l.file, l.yaml, 0o600); err != nil {
		t.Fatal(err)
	}
	prov, err := docker.New(docker.Options{StateDir: l.stateDir(), Docker: cli})
	if err != nil {
		t.Fatal(err)
	}
	l.prov = prov
	t.Logf("lab %s on 10.252.%s.0/24, state under %s", name, l.octet(), l.stateRoot)
	return l
}

// labYAML is the CI lab's shape (labs/ci.yaml) with its own name and subnet.
func labYAML(name, image string, octet, cps, workers int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: lab/v1alpha1
kind: Lab
metadata:
  name: %s
provider:
  type: docker
  docker:
    image: %s
networks:
  - name: lab
    cidr: 10.252.%d.0/24
kubernetes:
  version: v1.34.12
controlPlane:
  mode: vip
  vip: 10.252.%d.10
cni:
  type: builtin
nodes:
`, name, image, octet, octet)
	for i := 1; i <= cps; i++ {
		fmt.Fprintf(&b, "  - name: cp%d\n    roles: [control-plane]\n    addresses: {lab: 10.252.%d.%d}\n", i, octet, 10+i)
	}
	for i := 1; i <= workers; i++ {
		fmt.Fprintf(&b, "  - name: w%d\n    roles: [worker]\n    addresses: {lab: 10.252.%d.%d}\n", i, octet, 20+i)
	}
	return b.String()
}

func (l *testLab) name() string     { return l.lab.Metadata.Name }
func (l *testLab) stateDir() string { return l.stateRoot + "/" + l.name() }
func (l *testLab) octet() string    { return strings.Split(l.lab.ControlPlane.VIP, ".")[2] }

// vip is the lab's VIP and the load balancers' port on it.
func (l *testLab) vip() (netip.Addr, int) {
	host, port := l.lab.Endpoint()
	return netip.MustParseAddr(host), port
}

func (l *testLab) nodeIP(node string) netip.Addr { return l.lab.NodeIP(l.lab.Node(node)) }

func (l *testLab) container(node string) string {
	return docker.ContainerName(l.lab, l.lab.Node(node))
}

func (l *testLab) nodes() []string {
	var out []string
	for _, n := range l.lab.Nodes {
		out = append(out, n.Name)
	}
	return out
}

func (l *testLab) loadBalancers() []string {
	var out []string
	for _, n := range l.lab.LoadBalancers() {
		out = append(out, n.Name)
	}
	return out
}

// options are the Up options of the tests: the lab's own state root, and
// the test's Docker client (it may be a daemon DOCKER_HOST does not name).
func (l *testLab) options(rep workflow.Reporter) provision.Options {
	return provision.Options{StateRoot: l.stateRoot, Report: rep, Until: "vip", Provider: l.prov}
}

// up runs provision.Up through the vip phase and returns its events.
func (l *testLab) up(ctx context.Context) (*e2etest.Events, error) {
	ev := &e2etest.Events{}
	err := provision.Up(ctx, l.lab, l.options(ev))
	return ev, err
}

// mustUp is up that fails the test on error, logging how long it took.
func (l *testLab) mustUp(t testing.TB, ctx context.Context) *e2etest.Events {
	t.Helper()
	start := time.Now()
	ev, err := l.up(ctx)
	if err != nil {
		t.Fatalf("lab up %s: %v\n%s", l.name(), err, ev.Failures())
	}
	t.Logf("lab up %s --until vip: %v", l.name(), time.Since(start).Round(time.Millisecond))
	return ev
}

// teardown deletes everything labelled with the lab's name. On failure it
// first logs what the nodes' load balancers said.
func (l *testLab) teardown() {
	if l.lab == nil {
		return // the first lab file did not parse: nothing was made
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if l.t.Failed() && l.lab != nil {
		for _, n := range l.nodes() {
			out, _ := l.cli.Run(ctx, "exec", l.container(n), "journalctl", "--no-pager", "-n", "25", "-u", "keepalived", "-u", "haproxy")
			if len(out) > 0 {
				l.t.Logf("%s: keepalived and haproxy journal:\n%s", n, out)
			}
		}
	}
	if l.prov == nil {
		// The provider was not made yet: delete by label directly.
		p, err := docker.New(docker.Options{StateDir: l.stateRoot, Docker: l.cli})
		if err != nil {
			l.t.Errorf("cleanup: %v", err)
			return
		}
		l.prov = p
	}
	if err := l.prov.Delete(ctx, l.lab); err != nil {
		l.t.Errorf("cleanup of lab %s: %v", l.name(), err)
	}
}

// exec runs a shell script in node's container as root.
func (l *testLab) exec(ctx context.Context, node, script string) (string, error) {
	return e2etest.Exec(ctx, l.cli, l.container(node), script)
}

func (l *testLab) mustExec(t testing.TB, ctx context.Context, node, script string) string {
	t.Helper()
	out, err := l.exec(ctx, node, script)
	if err != nil {
		t.Fatalf("%s: %v", node, err)
	}
	return out
}

// docker runs a docker command on the lab's daemon.
func (l *testLab) docker(t testing.TB, ctx context.Context, args ...string) string {
	t.Helper()
	return e2etest.Docker(t, ctx, l.cli, args...)
}

// holdersExec lists the nodes whose interfaces carry the VIP, asking each
// running node's kernel with `ip addr` through docker exec.
func (l *testLab) holdersExec(ctx context.Context) ([]string, error) {
	vip, _ := l.vip()
	var holders []string
	for _, n := range l.nodes() {
		out, err := l.exec(ctx, n, "ip -4 -o addr show")
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n, err)
		}
		for _, f := range strings.Fields(out) {
			if p, err := netip.ParsePrefix(f); err == nil && p.Addr() == vip {
				holders = append(holders, n)
			}
		}
	}
	return holders, nil
}

// waitOneHolder waits until exactly one node holds the VIP (by docker exec)
// and returns it.
func (l *testLab) waitOneHolder(t testing.TB, ctx context.Context, timeout time.Duration) string {
	t.Helper()
	var holders []string
	var err error
	ok := e2etest.WaitFor(ctx, timeout, 100*time.Millisecond, func() bool {
		holders, err = l.holdersExec(ctx)
		return err == nil && len(holders) == 1
	})
	if !ok {
		t.Fatalf("no single VIP holder within %v: holders %v, err %v", timeout, holders, err)
	}
	return holders[0]
}

// tcpOpen reports whether addr:port accepts a TCP connection from the host.
func tcpOpen(addr netip.Addr, port int, timeout time.Duration) error {
	c, err := net.DialTimeout("tcp", net.JoinHostPort(addr.String(), strconv.Itoa(port)), timeout)
	if err != nil {
		return err
	}
	return c.Close()
}

// waitActive waits until every unit is active on node.
func (l *testLab) waitActive(t testing.TB, ctx context.Context, node string, timeout time.Duration, units ...string) {
	t.Helper()
	var out string
	var err error
	ok := e2etest.WaitFor(ctx, timeout, 100*time.Millisecond, func() bool {
		out, err = l.exec(ctx, node, "systemctl is-active "+strings.Join(units, " "))
		return err == nil
	})
	if !ok {
		t.Fatalf("%s: %v not active within %v: %s %v", node, units, timeout, out, err)
	}
}

// notSkipped lists the node events of a run that did work: a node-done in
// any phase but connect and facts (which only read and always run) or the
// local phases (nodes, vip: they check, they change nothing when done).
func notSkipped(evs []workflow.Event) []string {
	var out []string
	for _, ev := range evs {
		if ev.Node == "" || ev.Phase == "connect" || ev.Phase == "facts" {
			continue
		}
		if ev.Kind == workflow.NodeDone || ev.Kind == workflow.NodeFail {
			out = append(out, fmt.Sprintf("%s %s %s", ev.Kind, ev.Phase, ev.Node))
		}
	}
	sort.Strings(out)
	return out
}

// figure logs a measured value and appends it, as one JSON line, to the
// file LAB_FIGURES names.
func figure(t testing.TB, fields map[string]any) {
	t.Helper()
	fields["test"] = t.Name()
	b, err := json.Marshal(fields)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("figure: %s", b)
	path := os.Getenv("LAB_FIGURES")
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Errorf("LAB_FIGURES: %v", err)
		return
	}
	defer f.Close()
	if _, err := f.Write(append(b, '\n')); err != nil {
		t.Errorf("LAB_FIGURES: %v", err)
	}
}

// stats returns the median and the worst of ds.
func stats(ds []time.Duration) (median, worst time.Duration) {
	if len(ds) == 0 {
		return 0, 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		median = s[n/2]
	} else {
		median = (s[n/2-1] + s[n/2]) / 2
	}
	return median, s[n-1]
}

func seconds(d time.Duration) float64 { return float64(d.Microseconds()) / 1e6 }

// requireRoot skips or fails (see tooltest) when not root: the monitor
// enters the nodes' network namespaces.
func requireRoot(t testing.TB) {
	t.Helper()
	tooltest.Root(t, "entering the nodes' network namespaces")
}

// errorContains fails unless err's text contains every part.
func errorContains(t testing.TB, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("expected an error mentioning %q, got none", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error does not mention %q:\n%v", p, err)
		}
	}
}
