// Package dockercli runs the docker command-line client, the way kind talks
// to Docker: no client library to keep in step with the engine, and every
// setting the user's client honours (DOCKER_HOST, contexts, TLS) just works.
package dockercli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
)

// CLI runs one docker client binary.
type CLI struct {
	// Binary is the docker client to run.
	Binary string
	// Host, when set, is the daemon to talk to (DOCKER_HOST); otherwise
	// the client's own settings apply.
	Host string
}

// debianClient is the client that ships with Debian's docker.io. It is
// preferred over whatever comes first on PATH because a newer client
// installed elsewhere may speak an API the engine does not.
const debianClient = "/usr/bin/docker"

// New returns a CLI for binary, or for the docker client found on this
// machine when binary is empty.
func New(binary string) (*CLI, error) {
	if binary != "" {
		return &CLI{Binary: binary}, nil
	}
	if fi, err := os.Stat(debianClient); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
		return &CLI{Binary: debianClient}, nil
	}
	p, err := exec.LookPath("docker")
	if err != nil {
		return nil, fmt.Errorf("docker client not found (install docker.io): %w", err)
	}
	return &CLI{Binary: p}, nil
}

// Error is a failed docker command with what it printed on stderr.
type Error struct {
	Args   []string
	Err    error
	Stderr string
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("docker %s: %v", strings.Join(e.Args, " "), e.Err)
	if e.Stderr != "" {
		msg += ": " + e.Stderr
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Run runs docker with args and returns its standard output.
func (c *CLI) Run(ctx context.Context, args ...string) ([]byte, error) {
	return c.RunWithInput(ctx, nil, args...)
}

// RunWithInput is Run with stdin connected to in.
func (c *CLI) RunWithInput(ctx context.Context, in io.Reader, args ...string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, c.Binary, args...)
	if c.Host != "" {
		cmd.Env = append(os.Environ(), "DOCKER_HOST="+c.Host)
	}
	cmd.Stdin = in
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = ctxErr
		}
		return stdout.Bytes(), &Error{Args: short(args), Err: err, Stderr: strings.TrimSpace(stderr.String())}
	}
	return stdout.Bytes(), nil
}

// short keeps error messages readable: long argument lists (docker run has
// dozens of flags) are cut after the first few.
func short(args []string) []string {
	const keep = 6
	if len(args) <= keep {
		return args
	}
	return append(append([]string(nil), args[:keep]...), "...")
}

// IsNotFound reports whether err says an object (container, image, network,
// volume) does not exist.
func IsNotFound(err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	s := strings.ToLower(e.Stderr)
	return strings.Contains(s, "no such") || strings.Contains(s, "not found")
}
