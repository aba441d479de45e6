package ssh

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// Cmd is a command to run as root on a node.
type Cmd struct {
	// Command is a shell command line (run by sh -c).
	Command string
	// Input is given to the command's standard input. Prefer it to the
	// command line for secrets: command lines are visible in ps and logged
	// by sudo. On the node it passes through a 0600 temporary file that is
	// unlinked before the command starts (stdin itself stays the lifeline
	// that stops the command on cancellation).
	Input []byte
	// Timeout bounds the command; when it passes (or the context ends) the
	// command's remote processes are stopped.
	Timeout time.Duration
	// Stdout, when set, receives the command's standard output unmasked
	// instead of the Output stream (its lines still go to an error's tail).
	Stdout io.Writer
}

// Run runs command as root on the node, streaming its output.
func (c *Client) Run(ctx context.Context, command string) error {
	return c.Exec(ctx, Cmd{Command: command})
}

// Output runs command as root and returns its standard output.
func (c *Client) Output(ctx context.Context, command string) ([]byte, error) {
	var b bytes.Buffer
	err := c.Exec(ctx, Cmd{Command: command, Stdout: &b})
	return b.Bytes(), err
}

// RunError is a command that failed on a node: it exited non-zero, was
// killed, timed out or was cancelled, or lost its connection. Its fields
// have secrets masked.
type RunError struct {
	Node    string
	Command string
	// ExitCode is the remote exit status, or -1 when there is none.
	ExitCode int
	Signal   string
	Tail     []string // the last lines of output
	Err      error    // cancellation, timeout or connection loss; nil for an exit status
}

func (e *RunError) Error() string {
	var b strings.Builder
	cmd := e.Command
	if len(cmd) > 200 {
		cmd = cmd[:200] + "..."
	}
	fmt.Fprintf(&b, "%s: `%s` ", e.Node, cmd)
	switch {
	case e.Err != nil && e.ExitCode >= 0:
		fmt.Fprintf(&b, "stopped (%v), exit status %d", e.Err, e.ExitCode)
	case e.Err != nil:
		fmt.Fprintf(&b, "failed: %v", e.Err)
	case e.Signal != "":
		fmt.Fprintf(&b, "killed by signal %s", e.Signal)
	default:
		fmt.Fprintf(&b, "exited with status %d", e.ExitCode)
	}
	if len(e.Tail) > 0 {
		fmt.Fprintf(&b, "; last %d lines of output:", len(e.Tail))
		for _, l := range e.Tail {
			b.WriteString("\n    ")
			b.WriteString(l)
		}
	}
	return b.String()
}

func (e *RunError) Unwrap() error { return e.Err }

// ErrConnectionLost is matched by errors of commands whose connection
// broke while they ran; the command may or may not have completed.
var ErrConnectionLost = errors.New("connection lost")

// wrapper runs the command in its own process group and keeps the
// session's stdin as a lifeline: when it reaches EOF (the client closed
// it on cancellation, or the connection died and sshd closed the pipe) the
// whole group gets SIGTERM, then SIGKILL after a grace period. sshd itself
// does not stop the processes of a closed session. Arguments: command,
// length of the input that precedes the lifeline on stdin, grace seconds.
//
//go:embed wrapper.sh
var wrapper string

// quote quotes s for a POSIX shell.
func quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// remoteCommand is the command line sent to sshd for cmd.
func (c *Client) remoteCommand(cmd Cmd) string {
	grace := strconv.FormatFloat(c.t.cfg.KillGrace.Seconds(), 'f', -1, 64)
	line := "sh -c " + quote(wrapper) + " lab-run " + quote(cmd.Command) + " " + strconv.Itoa(len(cmd.Input)) + " " + grace
	if !c.root() {
		line = "sudo -n -- " + line
	}
	return line
}

// Exec runs cmd as root on the node: directly when connected as root,
// through `sudo -n` otherwise. Output lines go to Config.Output with the
// node's name; a failure is a *RunError naming node, command, exit status
// and the last lines of output. When ctx ends or cmd.Timeout passes, the
// command's remote processes are stopped before Exec returns (or the
// connection is closed, which stops them too).
func (c *Client) Exec(ctx context.Context, cmd Cmd) error {
	if cmd.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, cmd.Timeout,
			fmt.Errorf("timed out after %v: %w", cmd.Timeout, context.DeadlineExceeded))
		defer cancel()
	}
	if !c.root() {
		if err := c.checkSudo(ctx); err != nil {
			return err
		}
	}
	sess, cn, release, err := c.session(ctx)
	if err != nil {
		return err
	}
	defer release()
	defer sess.Close()

	secrets := c.t.secrets
	tl := &tail{n: c.t.cfg.TailLines}
	stdout := &lineWriter{node: c.target.Name, stream: "stdout", out: c.t.cfg.Output, secrets: secrets, tail: tl}
	stderr := &lineWriter{node: c.target.Name, stream: "stderr", out: c.t.cfg.Output, secrets: secrets, tail: tl}
	sess.Stdout, sess.Stderr = stdout, stderr
	if cmd.Stdout != nil {
		stdout.out = nil
		sess.Stdout = io.MultiWriter(cmd.Stdout, stdout)
	}
	stdin, err := sess.StdinPipe()
	if err != nil {
		return fmt.Errorf("%s: %w", c.target, err)
	}
	fail := func(code int, signal string, err error) *RunError {
		stdout.flush()
		stderr.flush()
		return &RunError{
			Node: c.target.Name, Command: secrets.Mask(cmd.Command), ExitCode: code, Signal: signal,
			Tail: tl.get(), Err: secrets.MaskError(err),
		}
	}
	if err := sess.Start(c.remoteCommand(cmd)); err != nil {
		return fail(-1, "", err)
	}
	if len(cmd.Input) > 0 {
		// The wrapper reads exactly this much before it watches the
		// lifeline; the write blocks only while the remote side is slow.
		go stdin.Write(cmd.Input)
	}
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()

	var waitErr, stopErr error
	select {
	case waitErr = <-done:
	case <-ctx.Done():
		stopErr = context.Cause(ctx)
		// EOF on the lifeline stops the remote process group; wait for
		// the wrapper to report, but not forever.
		stdin.Close()
		timer := time.NewTimer(c.t.cfg.KillGrace + 5*time.Second)
		select {
		case waitErr = <-done:
		case <-timer.C:
			waitErr = errors.New("no exit status after stopping the command")
		case <-cn.dead:
			waitErr = <-done
		}
		timer.Stop()
	}
	stdout.flush()
	stderr.flush()

	var exit *ssh.ExitError
	switch {
	case stopErr != nil && errors.As(waitErr, &exit):
		return fail(exit.ExitStatus(), exit.Signal(), fmt.Errorf("%w; remote processes stopped", stopErr))
	case stopErr != nil:
		return fail(-1, "", stopErr)
	case waitErr == nil:
		return nil
	case errors.As(waitErr, &exit):
		if exit.Signal() != "" {
			return fail(-1, exit.Signal(), nil)
		}
		return fail(exit.ExitStatus(), "", nil)
	default:
		// No exit status: the connection (or the remote sshd) went away.
		cause := waitErr
		if !cn.alive() && cn.err != nil {
			cause = cn.err
		}
		return fail(-1, "", fmt.Errorf("%w while the command ran: %v", ErrConnectionLost, cause))
	}
}
