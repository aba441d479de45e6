// Package e2etest holds the helpers the end-to-end test packages
// (provision/e2e and provision/e2e/cluster) share: bounded contexts and
// polling, random names, commands on the host and in node containers, a
// Docker network reserved for a lab, and a collector of progress events.
//
// It is an ordinary package rather than a _test.go file so that both test
// packages can import it; nothing outside tests should.
package e2etest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labctl/lab/provision/labfile"
	"github.com/labctl/lab/provision/provider/docker"
	"github.com/labctl/lab/provision/provider/docker/dockercli"
	"github.com/labctl/lab/provision/workflow"
)

// Context bounds a test's work so that a hang fails it with a message
// instead of running into go test's global timeout.
func Context(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// WaitFor polls cond every interval until it holds or timeout passes (or
// ctx ends). It reports whether cond held.
func WaitFor(ctx context.Context, timeout, interval time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(interval):
		}
	}
}

// RandomHex returns n random bytes in hex, for names that must not collide
// with another test's or another run's.
func RandomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// RandomInt returns a random number in [0, n).
func RandomInt(t testing.TB, n int) int {
	v, err := rand.Int(rand.Reader, big.NewInt(int64(n)))
	if err != nil {
		t.Fatal(err)
	}
	return int(v.Int64())
}

// Run runs a program on the host and returns its combined output. The error
// names the command and carries its output, so a failure explains itself.
func Run(ctx context.Context, name string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// RunInput is Run with input on the program's standard input.
func RunInput(ctx context.Context, input, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(input)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// NetcheckName connects to a netcheck server at addr from this machine and
// returns the name it answered with, or "error: ..." within 3 s.
func NetcheckName(ctx context.Context, addr string) string {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "error: " + err.Error()
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return "error: " + err.Error()
	}
	return strings.TrimSpace(line)
}

// Exec runs a shell script as root in a node container. Tests judge the
// nodes this way, from outside lab's own SSH code.
func Exec(ctx context.Context, cli *dockercli.CLI, container, script string) (string, error) {
	out, err := cli.Run(ctx, "exec", container, "sh", "-c", script)
	return string(out), err
}

// Docker runs a docker command on cli's daemon and returns its trimmed
// output; it fails the test on error.
func Docker(t testing.TB, ctx context.Context, cli *dockercli.CLI, args ...string) string {
	t.Helper()
	out, err := cli.Run(ctx, args...)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

// ReserveSubnet gives a lab a free /24 under prefix (two octets, such as
// "10.252") and fails the test when there is none: it tries random third
// octets, asks lab for the lab that uses one, and creates that lab's Docker
// network on it, labelled as the provider labels it (the provider keeps a
// network that is its lab's and has the lab's subnet). Docker refuses
// overlapping subnets atomically, so tests running at once, or a second run
// of a suite, never collide.
//
// The caller's cleanup should delete the lab of the last attempt (lab is
// a good place to remember it): a failed attempt may still have left
// something behind.
func ReserveSubnet(t testing.TB, ctx context.Context, cli *dockercli.CLI, prefix string, lab func(octet int) *labfile.Lab) *labfile.Lab {
	t.Helper()
	var lastErr error
	for range 30 {
		octet := 1 + RandomInt(t, 254)
		l := lab(octet)
		_, err := cli.Run(ctx, "network", "create", "--driver", "bridge",
			"--subnet", fmt.Sprintf("%s.%d.0/24", prefix, octet), "--gateway", fmt.Sprintf("%s.%d.1", prefix, octet),
			"--label", docker.LabelLab+"="+l.Metadata.Name, "--label", docker.LabelNetwork+"=lab",
			docker.NetworkName(l, "lab"))
		if err == nil {
			return l
		}
		if !strings.Contains(strings.ToLower(err.Error()), "overlap") {
			t.Fatalf("reserve a subnet: %v", err)
		}
		lastErr = err
	}
	t.Fatalf("no free %s.X.0/24 subnet: %v", prefix, lastErr)
	return nil
}

// Events collects the progress events of a run; it is a workflow.Reporter.
type Events struct {
	// Hook, when set, sees each event first (on the engine's goroutine).
	Hook func(workflow.Event)

	mu   sync.Mutex
	list []workflow.Event
}

// Event records ev.
func (e *Events) Event(ev workflow.Event) {
	if e.Hook != nil {
		e.Hook(ev)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.list = append(e.list, ev)
}

// All returns a copy of the events so far.
func (e *Events) All() []workflow.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.list)
}

// Failures lists the node-fail and phase-fail events, one a line, for
// error messages.
func (e *Events) Failures() string {
	var b strings.Builder
	for _, ev := range e.All() {
		if ev.Kind == workflow.NodeFail || ev.Kind == workflow.PhaseFail {
			fmt.Fprintf(&b, "  %s %s %s: %s\n", ev.Kind, ev.Phase, ev.Node, ev.Message)
		}
	}
	return b.String()
}

// EnvInt reads a positive integer knob from the environment, def when
// unset.
func EnvInt(t testing.TB, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}
