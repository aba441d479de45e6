package ssh

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// Transport connects to nodes. It keeps one Client per node name and one
// connection per jump host, shared by every node behind it. It is safe for
// concurrent use.
type Transport struct {
	cfg     Config
	auth    *auth
	keys    *hostKeys
	secrets *Secrets
	sums    sumCache

	mu      sync.Mutex
	clients map[string]*Client
	jumps   map[string]*conn // by chain key
	closed  bool
}

// New checks cfg and loads the key files. An encrypted key without a way
// to ask for its passphrase fails here, before any node is contacted.
func New(cfg Config) (*Transport, error) {
	c := cfg.withDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
	a, err := newAuth(&c)
	if err != nil {
		return nil, err
	}
	keys, err := newHostKeys(c.KnownHosts, c.Policy, c.Logf)
	if err == nil {
		keys.readOnly = c.KnownHostsReadOnly
	}
	if err != nil {
		return nil, err
	}
	return &Transport{
		cfg:     c,
		auth:    a,
		keys:    keys,
		secrets: &Secrets{},
		clients: map[string]*Client{},
		jumps:   map[string]*conn{},
	}, nil
}

// Secrets is the transport's secret set: everything registered there is
// masked in output lines and errors.
func (t *Transport) Secrets() *Secrets { return t.secrets }

// Client returns the node's client, connecting on first use (retrying while
// the node boots, within ConnectTimeout and ctx). Later calls for the same
// node, user and address return the same client.
func (t *Transport) Client(ctx context.Context, target Target) (*Client, error) {
	if target.Name == "" {
		target.Name = target.Addr()
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, errors.New("ssh: transport closed")
	}
	key := target.Name + "|" + target.User + "@" + target.Addr()
	c, ok := t.clients[key]
	if !ok {
		c = &Client{t: t, target: target, sessions: make(chan struct{}, t.cfg.MaxSessions)}
		t.clients[key] = c
	}
	t.mu.Unlock()
	if _, err := c.conn(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// Close closes every connection.
func (t *Transport) Close() error {
	t.mu.Lock()
	t.closed = true
	clients, jumps := t.clients, t.jumps
	t.clients, t.jumps = map[string]*Client{}, map[string]*conn{}
	t.mu.Unlock()
	for _, c := range clients {
		c.Close()
	}
	for _, j := range jumps {
		j.close()
	}
	t.auth.close()
	return nil
}

func (t *Transport) logf(format string, args ...any) {
	t.cfg.Logf("%s", t.secrets.Mask(fmt.Sprintf(format, args...)))
}

// conn is one live SSH connection with its keepalive.
type conn struct {
	client *ssh.Client
	dead   chan struct{} // closed when the connection is gone
	err    error         // why, once dead is closed
	once   sync.Once
}

func (c *conn) close() { c.client.Close() }

func (c *conn) alive() bool {
	select {
	case <-c.dead:
		return false
	default:
		return true
	}
}

// dial connects to target through the configured jump hosts, retrying
// retryable failures with backoff until ConnectTimeout or ctx ends.
func (t *Transport) dial(ctx context.Context, target Target) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, t.cfg.ConnectTimeout)
	defer cancel()
	start := time.Now()
	delay := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		c, err := t.dialOnce(ctx, target)
		if err == nil {
			return c, nil
		}
		if isPermanent(err) {
			return nil, err
		}
		if ctx.Err() != nil {
			return nil, &DialError{Node: target.String(), Addr: target.Addr(), Attempts: attempt, Elapsed: time.Since(start), Err: err, ctxErr: context.Cause(ctx)}
		}
		t.logf("%s: connect attempt %d failed: %v; retrying in %v", target, attempt, err, delay)
		timer := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, &DialError{Node: target.String(), Addr: target.Addr(), Attempts: attempt, Elapsed: time.Since(start), Err: err, ctxErr: context.Cause(ctx)}
		case <-timer.C:
		}
		delay = min(delay*2, 2*time.Second)
	}
}

// DialError is a connection that could not be made within the timeout.
type DialError struct {
	Node     string
	Addr     string
	Attempts int
	Elapsed  time.Duration
	Err      error // the last attempt's
	ctxErr   error // why attempts stopped: timeout or the caller's cancellation
}

func (e *DialError) Error() string {
	return fmt.Sprintf("%s: cannot connect to %s: %d attempts in %v, last: %v",
		e.Node, e.Addr, e.Attempts, e.Elapsed.Round(time.Millisecond), e.Err)
}

func (e *DialError) Unwrap() []error { return []error{e.Err, e.ctxErr} }

// permanentError marks failures that retrying cannot fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

func isPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// dialOnce makes one attempt: the jump chain (reused when alive), then the
// target.
func (t *Transport) dialOnce(ctx context.Context, target Target) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, t.cfg.AttemptTimeout)
	defer cancel()
	var via *conn
	for i := range t.cfg.Jumps {
		j, err := t.jump(ctx, i, via)
		if err != nil {
			return nil, err
		}
		via = j
	}
	return t.handshake(ctx, target, via)
}

// jump returns the connection to the i-th jump host, dialling it through
// via when there is no live one.
func (t *Transport) jump(ctx context.Context, i int, via *conn) (*conn, error) {
	var key []string
	for _, j := range t.cfg.Jumps[:i+1] {
		key = append(key, j.User+"@"+j.Addr())
	}
	k := strings.Join(key, ",")
	t.mu.Lock()
	j := t.jumps[k]
	t.mu.Unlock()
	if j != nil && j.alive() {
		return j, nil
	}
	target := t.cfg.Jumps[i]
	if target.Name == "" {
		target.Name = "jump host " + target.Addr()
	}
	j, err := t.handshake(ctx, target, via)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	if old := t.jumps[k]; old != nil && old.alive() {
		// Another node dialled the same jump host meanwhile: share theirs.
		t.mu.Unlock()
		j.close()
		return old, nil
	}
	t.jumps[k] = j
	t.mu.Unlock()
	return j, nil
}

// handshake opens a TCP connection to target (through via when not nil)
// and runs the SSH handshake with host key verification.
func (t *Transport) handshake(ctx context.Context, target Target, via *conn) (*conn, error) {
	addr := target.Addr()
	var nc net.Conn
	var err error
	if via == nil {
		var d net.Dialer
		nc, err = d.DialContext(ctx, "tcp", addr)
	} else {
		nc, err = via.client.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, err
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetKeepAlive(true)
	}
	// Closing the connection is the one way to interrupt a handshake
	// (channels through jump hosts have no deadlines).
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	cfg := &ssh.ClientConfig{
		User:              target.User,
		Auth:              t.auth.methods(),
		HostKeyCallback:   t.keys.callback(target),
		HostKeyAlgorithms: t.keys.algorithms(target),
	}
	if len(t.cfg.Ciphers) > 0 {
		cfg.Ciphers = t.cfg.Ciphers
	}
	sc, chans, reqs, err := ssh.NewClientConn(nc, addr, cfg)
	if !stop() {
		// The context ended during the handshake; the connection is closed.
		if err == nil {
			sc.Close()
		}
		return nil, fmt.Errorf("%s: handshake with %s: %w", target, addr, context.Cause(ctx))
	}
	if err != nil {
		nc.Close()
		var hk *HostKeyError
		switch {
		case errors.As(err, &hk):
			return nil, &permanentError{hk}
		case strings.Contains(err.Error(), "unable to authenticate"):
			return nil, &permanentError{fmt.Errorf("%s: %w as %s@%s (permanent, not retried): the node accepted none of: %s",
				target, ErrAuth, target.User, addr, t.auth.describe())}
		case strings.Contains(err.Error(), "recording host key"), strings.Contains(err.Error(), "no host key for"),
			strings.Contains(err.Error(), "known_hosts"):
			return nil, &permanentError{err}
		}
		return nil, fmt.Errorf("%s: %w", target, err)
	}
	c := &conn{client: ssh.NewClient(sc, chans, reqs), dead: make(chan struct{})}
	go func() {
		err := c.client.Wait()
		c.once.Do(func() {
			if c.err == nil {
				c.err = err
			}
			close(c.dead)
		})
	}()
	go t.keepalive(target, c)
	return c, nil
}

// keepalive sends keepalive@openssh.com requests; when KeepAliveMax
// intervals in a row pass without an answer (a node that froze, a network
// that dropped without a reset), it closes the connection so that commands
// on it fail instead of hanging.
func (t *Transport) keepalive(target Target, c *conn) {
	tick := time.NewTicker(t.cfg.KeepAlive)
	defer tick.Stop()
	var pending chan error
	missed := 0
	for {
		select {
		case <-c.dead:
			return
		case <-tick.C:
		}
		if pending != nil {
			select {
			case err := <-pending:
				if err != nil {
					return // the connection is closing
				}
				missed = 0
			default:
				missed++
				if missed < t.cfg.KeepAliveMax {
					continue
				}
				err := fmt.Errorf("connection lost: no answer to keepalives for %v", time.Duration(missed)*t.cfg.KeepAlive)
				t.logf("%s: %v; closing it", target, err)
				c.once.Do(func() { c.err = err; close(c.dead) })
				c.client.Close()
				return
			}
		}
		pending = make(chan error, 1)
		go func(p chan error) {
			_, _, err := c.client.SendRequest("keepalive@openssh.com", true, nil)
			p <- err
		}(pending)
	}
}
