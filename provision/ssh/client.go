package ssh

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// ErrNoSudo is matched (errors.Is) when a non-root user cannot become root
// without a password.
var ErrNoSudo = errors.New("no passwordless sudo")

// Client runs commands and uploads files on one node. It reuses one SSH
// connection for all of them and reconnects when that connection is lost.
// It is safe for concurrent use; at most Config.MaxSessions commands run
// at once on one connection.
type Client struct {
	t        *Transport
	target   Target
	sessions chan struct{} // semaphore of open sessions

	mu      sync.Mutex
	c       *conn
	sudoOK  bool  // sudo -n works (checked once per client)
	sudoErr error // why it does not
}

// Name is the node's name.
func (c *Client) Name() string { return c.target.Name }

// Target is where the client connects.
func (c *Client) Target() Target { return c.target }

// Secrets is the secret set of the client's transport, shared by every
// node: a secret learnt from one node is masked in all their output.
func (c *Client) Secrets() *Secrets { return c.t.secrets }

// Close closes the connection. A later command reconnects.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.c != nil {
		c.c.close()
		c.c = nil
	}
	return nil
}

// conn returns the live connection, dialling when there is none.
func (c *Client) conn(ctx context.Context) (*conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.c != nil && c.c.alive() {
		return c.c, nil
	}
	if c.c != nil {
		c.t.logf("%s: reconnecting (%v)", c.target, c.c.err)
	}
	cn, err := c.t.dial(ctx, c.target)
	if err != nil {
		return nil, c.t.secrets.MaskError(err)
	}
	c.c = cn
	return cn, nil
}

// session opens a session, taking a slot of MaxSessions; release frees it.
func (c *Client) session(ctx context.Context) (sess *ssh.Session, cn *conn, release func(), err error) {
	select {
	case c.sessions <- struct{}{}:
	case <-ctx.Done():
		return nil, nil, nil, fmt.Errorf("%s: waiting for a free session: %w", c.target, context.Cause(ctx))
	}
	release = func() { <-c.sessions }
	delay := 5 * time.Millisecond
	for attempt := 0; ; attempt++ {
		cn, err = c.conn(ctx)
		if err != nil {
			release()
			return nil, nil, nil, err
		}
		sess, err = cn.client.NewSession()
		if err == nil {
			return sess, cn, release, nil
		}
		var oce *ssh.OpenChannelError
		switch {
		case !cn.alive() && attempt == 0:
			// The connection died since it was last used: redial once.
			continue
		case errors.As(err, &oce) && attempt < 50:
			// sshd frees a closed session slightly after we closed it,
			// so at MaxSessions a new one can be refused for a moment.
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				release()
				return nil, nil, nil, fmt.Errorf("%s: new session: %w", c.target, context.Cause(ctx))
			case <-t.C:
			}
			delay = min(2*delay, 100*time.Millisecond)
			continue
		}
		release()
		return nil, nil, nil, fmt.Errorf("%s: new session: %w", c.target, err)
	}
}

// root says whether commands run as root without sudo.
func (c *Client) root() bool { return c.target.User == "root" }

// checkSudo makes sure `sudo -n` works for a non-root user, once per client.
func (c *Client) checkSudo(ctx context.Context) error {
	c.mu.Lock()
	ok, err := c.sudoOK, c.sudoErr
	c.mu.Unlock()
	if ok || err != nil {
		return err
	}
	sess, _, release, err := c.session(ctx)
	if err != nil {
		return err
	}
	defer release()
	defer sess.Close()
	out, runErr := sess.CombinedOutput("sudo -n true")
	msg := strings.TrimSpace(string(out))
	var exit *ssh.ExitError
	switch {
	case runErr == nil:
		ok = true
	case errors.As(runErr, &exit) && exit.ExitStatus() == 127:
		err = fmt.Errorf("%s: %w: user %s is not root and sudo is not installed (%s); connect as root or install sudo",
			c.target, ErrNoSudo, c.target.User, msg)
	case errors.As(runErr, &exit):
		err = fmt.Errorf("%s: %w: user %s cannot become root without a password (sudo -n true: %s); "+
			"allow it with a NOPASSWD rule, e.g. '%s ALL=(ALL) NOPASSWD: ALL' in /etc/sudoers.d/%s, or connect as root",
			c.target, ErrNoSudo, c.target.User, msg, c.target.User, c.target.User)
	default:
		return fmt.Errorf("%s: checking sudo: %w", c.target, runErr) // not cached: connection trouble
	}
	c.mu.Lock()
	c.sudoOK, c.sudoErr = ok, err
	c.mu.Unlock()
	return err
}
