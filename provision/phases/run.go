// Package phases holds the concrete phases of lab's commands, one file
// each — connect, facts, os, packages, loadbalancer, vip, kubernetes, init,
// joins, preflight, cni, ready, kubeconfig, reset and audit — and Run, the
// state one command's phases share. provision/workflow runs them; the
// files a phase installs come from templates/nodefiles.
package phases

import (
	"context"
	"fmt"
	"sync"

	"github.com/labctl/lab/bpf/preflight"
	"github.com/labctl/lab/provision/labfile"
	"github.com/labctl/lab/provision/state"
	"github.com/labctl/lab/provision/workflow"
	"github.com/labctl/lab/templates"
)

// Conn is what the phases need of a connection to a node. The SSH transport
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

// Run is the state the phases of one command share. Phases fill it in
// order: connect adds connections, facts adds facts.
type Run struct {
	Lab    *labfile.Lab
	State  *state.Dir
	Dialer Dialer
	Report workflow.Reporter
	// Sources say where this machine's files for the nodes come from.
	Sources Sources
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
	// cilium is the lab's Cilium set, gathered once per run.
	cilium ciliumGathered
	// addons are the lab's builtin add-on sets, gathered once per run.
	addons addonsGathered
}

// NewRun starts the shared state of a command on lab l.
func NewRun(l *labfile.Lab, st *state.Dir, d Dialer, r workflow.Reporter) *Run {
	if r == nil {
		r = workflow.Discard{}
	}
	return &Run{Lab: l, State: st, Dialer: d, Report: r, conns: map[string]Conn{}, facts: map[string]*Facts{},
		reports: map[string]preflight.Report{}}
}

// Conn returns the node's connection, dialling it on first use.
func (r *Run) Conn(ctx context.Context, node string) (Conn, error) {
	r.mu.Lock()
	conn, ok := r.conns[node]
	r.mu.Unlock()
	if ok {
		return conn, nil
	}
	conn, err := r.Dialer.Dial(ctx, node)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.conns[node] = conn
	return conn, nil
}

// Facts returns what the facts phase learnt about node.
func (r *Run) Facts(node string) (*Facts, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, ok := r.facts[node]
	if !ok {
		return nil, fmt.Errorf("no facts gathered for %s: the facts phase must run first", node)
	}
	return f, nil
}

func (r *Run) setFacts(node string, f *Facts) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.facts[node] = f
}

// run runs cmd on node.
func (r *Run) run(ctx context.Context, node, cmd string) (string, error) {
	conn, err := r.Conn(ctx, node)
	if err != nil {
		return "", err
	}
	return conn.Run(ctx, cmd)
}

// maskSecrets registers secrets with node's connection, if it masks them.
func (r *Run) maskSecrets(ctx context.Context, node string, secrets ...string) {
	conn, err := r.Conn(ctx, node)
	if err != nil {
		return
	}
	if m, ok := conn.(SecretMasker); ok {
		m.MaskSecrets(secrets...)
	}
}

// install uploads files to node (the transport skips unchanged ones), then
// runs each command in order. It returns how many files it wrote.
func (r *Run) install(ctx context.Context, node string, files []templates.File, cmds ...string) (int, error) {
	conn, err := r.Conn(ctx, node)
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
func (r *Run) inPlace(ctx context.Context, node string, files []templates.File, check string) (bool, error) {
	ok, err := r.filesMatch(ctx, node, files)
	if err != nil || !ok {
		return false, err
	}
	if check != "" {
		if _, err := r.run(ctx, node, check); err != nil {
			return false, nil
		}
	}
	return true, nil
}

func (r *Run) info(ph, node, format string, args ...any) {
	r.Report.Event(workflow.Event{Kind: workflow.Info, Phase: ph, Node: node, Message: fmt.Sprintf(format, args...)})
}

// node returns the lab node called name.
func (r *Run) node(name string) *labfile.Node { return r.Lab.Node(name) }

func names(ns []*labfile.Node) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.Name
	}
	return out
}

// AllNodes is every node of the lab, in file order.
func (r *Run) AllNodes() []string {
	out := make([]string, len(r.Lab.Nodes))
	for i, n := range r.Lab.Nodes {
		out[i] = n.Name
	}
	return out
}

// Sources say where the files lab sends to nodes come from on this
// machine, apart from what it renders (templates/nodefiles): lab's own
// node programs (lab-node, helm), the cache of Kubernetes artifacts
// (programs and images, see provision/artifacts) and Cilium's images and
// chart.
type Sources struct {
	// LabNodeDir holds lab-node-linux-amd64 and lab-node-linux-arm64, the
	// builtin datapath for each node architecture, for a lab built without
	// them embedded (make build embeds them and also leaves them beside
	// bin/lab).
	LabNodeDir string
	// Helm is a linux helm binary for the first control plane's
	// architecture (cni: cilium). When empty, the release is downloaded
	// once into CacheDir and checked against its published checksum.
	Helm string
	// CacheDir holds downloads (helm) and the artifact cache (see
	// artifacts.Layout); empty means the user's cache directory.
	CacheDir string
	// Userland finds, in the node image's cache directory (see
	// artifacts.Layout), the Debian root file system the build source
	// takes kube-proxy's iptables from. The caller supplies it so that
	// the phases depend on no provider; when nil, the build source only finds
	// Sets already in the cache.
	Userland func(nodeImageDir string) (string, error)
	// Cilium gives the lab's Cilium set: the images the cni-images phase
	// imports on every node and the Helm chart the cni phase installs
	// from (cni: cilium). The chart never comes from the network. When
	// nil, a lab with kubernetes.artifacts: build uses the build source
	// (the artifact cache, else built from github.com/cilium/cilium), and
	// any other lab fails the cni-images phase saying it has no source.
	// Tests give fakes.
	Cilium CiliumSource
}
