// Package steps holds the concrete phases of lab's commands — connect,
// facts, os, packages, loadbalancer, vip, kubeadm init and joins, cni,
// ready, kubeconfig, reset — and the shared state they pass along.
package steps

import (
	"context"
	"fmt"
	"sync"

	"github.com/labctl/lab/bpf/preflight"
	"github.com/labctl/lab/provision/labfile"
	"github.com/labctl/lab/provision/phase"
	"github.com/labctl/lab/provision/state"
	"github.com/labctl/lab/templates"
)

// Conn is what the steps need of a connection to a node. The SSH transport
// provides it; unit tests of step logic use fakes.
type Conn interface {
	// Run runs a shell command as root and returns its standard output.
	// The error names the node, the command, the exit code and the tail of
	// the output.
	Run(ctx context.Context, cmd string) (string, error)
	// Upload writes files atomically (temporary file, fsync, rename) with
	// their modes, skipping those whose content already matches, and
	// returns how many it wrote or fixed.
	Upload(ctx context.Context, files []templates.File) (written int, err error)
}

// SecretMasker is implemented by connections that mask registered secrets
// in every output line and error they report (the SSH transport does).
// Secrets learnt from a node, such as lab-node's ServiceAccount token,
// travel through a command's output once; registering them keeps them out
// of every later log line and error.
type SecretMasker interface {
	MaskSecrets(secrets ...string)
}

// Dialer opens the connection to a node.
type Dialer interface {
	Dial(ctx context.Context, node string) (Conn, error)
}

// Cluster is the state the phases of one command share. Phases fill it in
// order: connect adds connections, facts adds facts.
type Cluster struct {
	Lab    *labfile.Lab
	State  *state.Dir
	Dialer Dialer
	Report phase.Reporter
	// Artifacts are the local files lab pushes (lab-node, helm).
	Artifacts Artifacts
	// Containers is true when the lab's provider makes container nodes,
	// whose files differ (see templates.Facts).
	Containers bool

	mu    sync.Mutex
	conns map[string]Conn
	facts map[string]*Facts
	join  join
	// reports are the preflight phase's kernel reports, by node.
	reports map[string]preflight.Report
	// labNode is lab-node's ServiceAccount credential, learnt once per run.
	labNode labNodeAccess
}

// NewCluster starts the shared state of a command on lab l.
func NewCluster(l *labfile.Lab, st *state.Dir, d Dialer, r phase.Reporter) *Cluster {
	if r == nil {
		r = phase.Discard{}
	}
	return &Cluster{Lab: l, State: st, Dialer: d, Report: r, conns: map[string]Conn{}, facts: map[string]*Facts{},
		reports: map[string]preflight.Report{}}
}

// Conn returns the node's connection, dialling it on first use.
func (c *Cluster) Conn(ctx context.Context, node string) (Conn, error) {
	c.mu.Lock()
	conn, ok := c.conns[node]
	c.mu.Unlock()
	if ok {
		return conn, nil
	}
	conn, err := c.Dialer.Dial(ctx, node)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.conns[node] = conn
	return conn, nil
}

// Facts returns what the facts phase learnt about node.
func (c *Cluster) Facts(node string) (*Facts, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, ok := c.facts[node]
	if !ok {
		return nil, fmt.Errorf("no facts gathered for %s: the facts phase must run first", node)
	}
	return f, nil
}

func (c *Cluster) setFacts(node string, f *Facts) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.facts[node] = f
}

// run runs cmd on node.
func (c *Cluster) run(ctx context.Context, node, cmd string) (string, error) {
	conn, err := c.Conn(ctx, node)
	if err != nil {
		return "", err
	}
	return conn.Run(ctx, cmd)
}

// maskSecrets registers secrets with node's connection, if it masks them.
func (c *Cluster) maskSecrets(ctx context.Context, node string, secrets ...string) {
	conn, err := c.Conn(ctx, node)
	if err != nil {
		return
	}
	if m, ok := conn.(SecretMasker); ok {
		m.MaskSecrets(secrets...)
	}
}

// install uploads files to node (the transport skips unchanged ones), then
// runs each command in order. It returns how many files it wrote.
func (c *Cluster) install(ctx context.Context, node string, files []templates.File, cmds ...string) (int, error) {
	conn, err := c.Conn(ctx, node)
	if err != nil {
		return 0, err
	}
	written, err := conn.Upload(ctx, files)
	if err != nil {
		return written, err
	}
	for _, cmd := range cmds {
		if _, err := conn.Run(ctx, cmd); err != nil {
			return written, err
		}
	}
	return written, nil
}

// inPlace reports whether files are on node as rendered and check (a shell
// command, may be empty) succeeds there.
func (c *Cluster) inPlace(ctx context.Context, node string, files []templates.File, check string) (bool, error) {
	ok, err := c.filesMatch(ctx, node, files)
	if err != nil || !ok {
		return false, err
	}
	if check != "" {
		if _, err := c.run(ctx, node, check); err != nil {
			return false, nil
		}
	}
	return true, nil
}

func (c *Cluster) info(ph, node, format string, args ...any) {
	c.Report.Event(phase.Event{Kind: phase.Info, Phase: ph, Node: node, Message: fmt.Sprintf(format, args...)})
}

// node returns the lab node called name.
func (c *Cluster) node(name string) *labfile.Node { return c.Lab.Node(name) }

func names(ns []*labfile.Node) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.Name
	}
	return out
}

// AllNodes is every node of the lab, in file order.
func (c *Cluster) AllNodes() []string {
	out := make([]string, len(c.Lab.Nodes))
	for i, n := range c.Lab.Nodes {
		out[i] = n.Name
	}
	return out
}
