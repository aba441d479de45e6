package ssh_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/labctl/lab/internal/sshtest"
	"github.com/labctl/lab/provision/ssh"
)

func TestRunAsRoot(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	n := e.h.StartNode(sshtest.NodeOptions{Name: "n1"})
	sudoer, plain := e.h.User(true), e.h.User(false)
	e.h.Authorize(sudoer, e.key)
	e.h.Authorize(plain, e.key)
	tr := e.transport(t, e.config(t))

	for _, user := range []string{"root", sudoer} {
		out, err := e.client(t, tr, n, user).Output(ctx(t), "id -u")
		if err != nil || strings.TrimSpace(string(out)) != "0" {
			t.Errorf("as %s: id -u = %q, %v; want 0", user, out, err)
		}
	}
	// The node name prefixes streamed lines.
	if err := e.client(t, tr, n, sudoer).Run(ctx(t), "echo hello from $(id -un)"); err != nil {
		t.Fatal(err)
	}
	wait(t, e.out.seen("n1 | hello from root"), "the streamed line")

	c := e.client(t, tr, n, plain)
	err := c.Run(ctx(t), "true")
	if !errors.Is(err, ssh.ErrNoSudo) || !strings.Contains(err.Error(), "NOPASSWD") || !strings.Contains(err.Error(), plain) {
		t.Fatalf("user without sudo: got %v, want an error about NOPASSWD sudo", err)
	}
	t.Log(err)
}

func TestRunErrorKeepsTail(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	n := e.h.StartNode(sshtest.NodeOptions{Name: "w1"})
	c := e.client(t, e.transport(t, e.config(t)), n, "root")
	err := c.Run(ctx(t), "for i in $(seq 1 30); do echo line$i; done; echo broken; exit 3")
	var re *ssh.RunError
	if !errors.As(err, &re) {
		t.Fatalf("got %v, want a RunError", err)
	}
	if re.ExitCode != 3 || re.Node != "w1" || len(re.Tail) != 20 || re.Tail[19] != "broken" || re.Tail[0] != "line12" {
		t.Fatalf("got exit %d node %q tail %q", re.ExitCode, re.Node, re.Tail)
	}
	msg := err.Error()
	for _, want := range []string{"w1: ", "exit 3`", "exited with status 3", "line30", "broken"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	// Standard error is kept too (its order relative to standard output
	// is not: the streams travel apart).
	err = c.Run(ctx(t), "echo to stderr >&2; exit 1")
	if !errors.As(err, &re) || len(re.Tail) != 1 || re.Tail[0] != "to stderr" {
		t.Fatalf("got %v, want the stderr line in the tail", err)
	}
	// Input reaches the command's stdin.
	var out strings.Builder
	input := []byte("some input\nwithout a trailing newline")
	if err := c.Exec(ctx(t), ssh.Cmd{Command: "sha256sum", Input: input, Stdout: &out}); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(input)
	if want := hex.EncodeToString(sum[:]) + "  -\n"; out.String() != want {
		t.Errorf("stdin: got %q, want %q", out.String(), want)
	}
}

func TestSecretsNeverInLogs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	n := e.h.StartNode(sshtest.NodeOptions{Name: "cp1"})
	tr := e.transport(t, e.config(t))
	const token = "abcdef.0123456789abcdef"
	const certKey = "-----BEGIN KEY-----\nc2VjcmV0IGtleSBsaW5l\n-----END KEY-----"
	tr.Secrets().Add(token, certKey)
	c := e.client(t, tr, n, "root")
	err := c.Exec(ctx(t), ssh.Cmd{
		Command: fmt.Sprintf("echo join --token %s; printf '%%s\\n' \"$(cat)\" >&2; exit 1", token),
		Input:   []byte(certKey),
	})
	if err == nil {
		t.Fatal("command succeeded")
	}
	wait(t, e.out.seen("join --token ***"), "the masked line")
	for _, s := range []string{token, "c2VjcmV0IGtleSBsaW5l"} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error shows a secret:\n%v", err)
		}
		if strings.Contains(e.out.all(), s) {
			t.Errorf("output shows a secret:\n%s", e.out.all())
		}
	}
	if !strings.Contains(err.Error(), "join --token ***") {
		t.Errorf("error does not show the masked command and output:\n%v", err)
	}
}

// marker returns a unique `sleep` argument, so that a test can find its
// remote process in the machine's process table.
func marker(t *testing.T) string {
	n, err := rand.Int(rand.Reader, big.NewInt(1e9))
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d", 1e9+n.Int64())
}

func gone(m string) func() error {
	return func() error {
		if p := sshtest.Processes("sleep " + m); len(p) > 0 {
			return fmt.Errorf("remote processes %v still run", p)
		}
		return nil
	}
}

func TestCancelStopsRemoteCommand(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	n := e.h.StartNode(sshtest.NodeOptions{Name: "n1"})
	sudoer := e.h.User(true)
	e.h.Authorize(sudoer, e.key)
	tr := e.transport(t, e.config(t))

	for _, user := range []string{"root", sudoer} {
		for _, how := range []string{"cancel", "timeout"} {
			t.Run(user[:min(4, len(user))]+"-"+how, func(t *testing.T) {
				c := e.client(t, tr, n, user)
				m := marker(t)
				// A background child and a foreground one: both must stop.
				cmd := ssh.Cmd{Command: fmt.Sprintf("sleep %s & sleep %s; wait", m, m)}
				ctx2, cancel := context.WithCancel(ctx(t))
				defer cancel()
				if how == "timeout" {
					// Long enough to see the command start even on a busy machine.
					cmd.Timeout = 3 * time.Second
				}
				done := make(chan error, 1)
				go func() { done <- c.Exec(ctx2, cmd) }()
				eventually(t, "remote command started", func() error {
					if len(sshtest.Processes("sleep "+m)) < 2 {
						select {
						case err := <-done:
							t.Fatalf("command ended before it was seen running: %v", err)
						default:
						}
						return errors.New("not yet")
					}
					return nil
				})
				if how == "cancel" {
					cancel()
				}
				err := <-done
				want := context.Canceled
				if how == "timeout" {
					want = context.DeadlineExceeded
				}
				if !errors.Is(err, want) {
					t.Fatalf("got %v, want %v", err, want)
				}
				t.Log(err)
				eventually(t, "remote processes stopped", gone(m))
			})
		}
	}
}

func TestKilledConnectionIsReported(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	n := e.h.StartNode(sshtest.NodeOptions{Name: "n1"})
	c := e.client(t, e.transport(t, e.config(t)), n, "root")
	m := marker(t)
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx(t), fmt.Sprintf("echo started; sleep %s", m)) }()
	wait(t, e.out.seen("n1 | started"), "the command to start")
	if err := n.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := <-done
	if !errors.Is(err, ssh.ErrConnectionLost) || !strings.Contains(err.Error(), "n1") {
		t.Fatalf("got %v, want a lost connection error", err)
	}
	t.Log(err)
	// sshd closed the lifeline when it died: the command is stopped too.
	eventually(t, "remote processes stopped", gone(m))
	// The next command reconnects.
	if err := c.Run(ctx(t), "true"); err != nil {
		t.Fatalf("after reconnecting: %v", err)
	}
}

func TestFrozenConnectionIsReported(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	n := e.h.StartNode(sshtest.NodeOptions{Name: "n1"})
	cfg := e.config(t)
	cfg.KeepAlive, cfg.KeepAliveMax = 200*time.Millisecond, 3
	c := e.client(t, e.transport(t, cfg), n, "root")
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx(t), "echo started; sleep "+marker(t)) }()
	wait(t, e.out.seen("n1 | started"), "the command to start")
	// The node stops answering but its TCP connection stays open.
	if err := n.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Signal(syscall.SIGKILL) })
	err := <-done
	if !errors.Is(err, ssh.ErrConnectionLost) || !strings.Contains(err.Error(), "keepalive") {
		t.Fatalf("got %v, want a connection lost to keepalives", err)
	}
	t.Log(err)
}

func TestOneConnectionManySessions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	n := e.h.StartNode(sshtest.NodeOptions{Name: "n1"})
	c := e.client(t, e.transport(t, e.config(t)), n, "root")
	if err := c.Run(ctx(t), "true"); err != nil {
		t.Fatal(err)
	}
	before := fmt.Sprint(n.ConnectionPIDs())
	// More concurrent commands than sshd's MaxSessions (10).
	var wg sync.WaitGroup
	errs := make([]error, 25)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.Run(ctx(t), "echo $$")
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if after := fmt.Sprint(n.ConnectionPIDs()); after != before {
		t.Fatalf("sshd connection processes changed from %s to %s: the connection was not reused", before, after)
	}
}

func TestFanOutKeepsEveryError(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var targets []ssh.Target
	for i := 1; i <= 4; i++ {
		targets = append(targets, target(e.h.StartNode(sshtest.NodeOptions{Name: fmt.Sprintf("w%d", i)}), "root"))
	}
	tr := e.transport(t, e.config(t))
	var mu sync.Mutex
	running, peak := 0, 0
	err := tr.Each(ctx(t), targets, 2, func(ctx context.Context, c *ssh.Client) error {
		mu.Lock()
		running++
		peak = max(peak, running)
		mu.Unlock()
		defer func() { mu.Lock(); running--; mu.Unlock() }()
		if c.Name() == "w2" || c.Name() == "w4" {
			return c.Run(ctx, "echo failing on $(hostname) >&2; exit 7")
		}
		return c.Run(ctx, "true")
	})
	if peak > 2 {
		t.Errorf("%d nodes ran at once, limit 2", peak)
	}
	var re *ssh.RunError
	if !errors.As(err, &re) || re.ExitCode != 7 {
		t.Fatalf("got %v, want RunErrors", err)
	}
	msg := err.Error()
	for _, want := range []string{"w2: `echo", "w4: `echo"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "w1") || strings.Contains(msg, "w3") || strings.Contains(msg, "w2: w2") {
		t.Errorf("unexpected error text:\n%s", msg)
	}

	// Errors that do not name the item are prefixed with it.
	err = ssh.FanOut(ctx(t), []string{"a", "b"}, 0, func(s string) string { return s },
		func(_ context.Context, s string) error { return errors.New("boom") })
	if err == nil || err.Error() != "a: boom\nb: boom" {
		t.Fatalf("got %q", err)
	}
}
