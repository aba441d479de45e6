package provision

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	gossh "golang.org/x/crypto/ssh"

	"github.com/labctl/lab/provision/labfile"
	"github.com/labctl/lab/provision/phases"
	"github.com/labctl/lab/provision/provider"
	"github.com/labctl/lab/provision/provider/registry"
	"github.com/labctl/lab/provision/ssh"
	"github.com/labctl/lab/provision/state"
	"github.com/labctl/lab/provision/workflow"
	"github.com/labctl/lab/templates"
)

// Options configure a command on a lab. The CLI fills them from flags and
// settings.
type Options struct {
	// StateRoot holds one state directory per lab.
	StateRoot string
	// DefaultKey is the user's default SSH key, tried after the lab's own.
	DefaultKey string
	// Report receives progress events. Default: discarded.
	Report workflow.Reporter
	// Limit bounds parallel work per phase (default 32 nodes at once).
	Limit int
	// DryRun, Skip, Only and Until select what runs (see workflow.Engine).
	DryRun bool
	Skip   []string
	Only   []string
	Until  string
	// Passphrase asks for the passphrase of an encrypted key file.
	Passphrase ssh.PassphraseFunc
	// LabNodeDir holds lab-node-linux-{amd64,arm64} (default: the
	// directory of the running lab binary). Helm is a linux helm binary
	// pushed to the first control plane for cni: cilium.
	LabNodeDir string
	Helm       string
	// CacheDir keeps downloads (helm) and built artifacts (see
	// artifacts.Layout); "" for the user's default.
	CacheDir string
	// Userland finds the Debian root file system the build artifact
	// source takes kube-proxy's iptables from, in the node image's cache
	// directory. The CLI gives the docker node image's; nil limits the
	// build source to Sets already in the cache.
	Userland func(nodeImageDir string) (string, error)
	// Cilium gives the lab's Cilium images and chart (cni: cilium, see
	// phases.Sources.Cilium); nil uses the build source for labs with
	// kubernetes.artifacts: build and leaves other labs without one.
	Cilium phases.CiliumSource
	// Vagrantfile replaces the Vagrantfile built into lab for vagrant labs
	// (default: the built-in one).
	Vagrantfile string
	// Provider overrides the lab's provider (tests).
	Provider provider.Provider

	readOnly bool // no lock: the command only looks
}

// session is one command's hold on a lab: its state directory and lock, its
// provider and its SSH transport.
type session struct {
	lab  *labfile.Lab
	opts Options
	dir  *state.Dir
	lock *state.Lock
	prov provider.Provider
	// traits are the lab's provider type's, even when Options.Provider
	// stands in for the provider.
	traits provider.Traits
	rep    workflow.Reporter
	tr     *ssh.Transport
	mu     sync.Mutex
	nodes  map[string]provider.NodeInfo
}

// open takes the lab's lock and prepares its provider. The transport is
// made on first use, after the provider has created the nodes (it may
// generate the SSH key).
func open(l *labfile.Lab, o Options, command string) (*session, error) {
	if o.StateRoot == "" {
		return nil, errors.New("no state directory configured")
	}
	// A dry run changes nothing: no lock, no state directory made, no
	// host key recorded.
	openDir := state.Open
	if o.DryRun {
		openDir, o.readOnly = state.Look, true
	}
	dir, err := openDir(o.StateRoot, l.Metadata.Name)
	if err != nil {
		return nil, err
	}
	prov := o.Provider
	if prov == nil {
		prov, err = registry.New(l, registry.Config{StateDir: dir.Path(), Vagrantfile: o.Vagrantfile})
		if err != nil {
			return nil, err
		}
	}
	var lock *state.Lock
	var stale string
	if !o.readOnly {
		if lock, stale, err = dir.Lock(command); err != nil {
			return nil, err
		}
	}
	rep := o.Report
	if rep == nil {
		rep = workflow.Discard{}
	}
	if stale != "" {
		rep.Event(workflow.Event{Kind: workflow.Info, Message: "took over the lock left by " + stale + ", which is no longer running"})
	}
	return &session{lab: l, opts: o, dir: dir, lock: lock, prov: prov, traits: registry.Traits(l), rep: rep, nodes: map[string]provider.NodeInfo{}}, nil
}

// openReadOnly is open without the lock, for commands that only look.
func openReadOnly(l *labfile.Lab, o Options) (*session, error) {
	o.readOnly = true
	return open(l, o, "status")
}

func (s *session) close() {
	if s.tr != nil {
		s.tr.Close()
	}
	if s.lock != nil {
		s.lock.Unlock()
	}
}

// refreshNodes asks the provider where every node is.
func (s *session) refreshNodes(ctx context.Context) error {
	infos, err := s.prov.Nodes(ctx, s.lab)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, in := range infos {
		s.nodes[in.Name] = in
	}
	return nil
}

// transport builds the SSH transport from the lab's ssh settings, the
// provider's key and the user's default key.
func (s *session) transport() (*ssh.Transport, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tr != nil {
		return s.tr, nil
	}
	l := s.lab
	keys := s.keyFilesLocked()
	var jumps []ssh.Target
	for i, b := range l.SSH.Bastions {
		jumps = append(jumps, ssh.Target{Name: fmt.Sprintf("bastion%d", i+1), Host: b.Host, Port: b.Port, User: b.User})
	}
	tr, err := ssh.New(ssh.Config{
		KeyFiles:           keys,
		Agent:              l.SSH.AgentEnabled() && os.Getenv("SSH_AUTH_SOCK") != "",
		Passphrase:         s.opts.Passphrase,
		KnownHosts:         s.dir.KnownHosts(),
		KnownHostsReadOnly: s.opts.DryRun,
		Policy:             ssh.Policy(l.SSH.KnownHosts),
		Jumps:              jumps,
		// Container nodes answer SSH within seconds of Create; a stopped
		// or unreachable one should fail the phase soon, not after the
		// two minutes a booting VM may need.
		ConnectTimeout: s.traits.ConnectTimeout,
		Output: func(line ssh.Line) {
			s.rep.Event(workflow.Event{Kind: workflow.Log, Node: line.Node, Message: line.Text})
		},
		Logf: func(format string, args ...any) {
			s.rep.Event(workflow.Event{Kind: workflow.Log, Message: fmt.Sprintf(format, args...)})
		},
	})
	if err != nil {
		return nil, err
	}
	s.tr = tr
	return tr, nil
}

// Dial implements phases.Dialer over the SSH transport.
func (s *session) Dial(ctx context.Context, node string) (phases.Conn, error) {
	s.mu.Lock()
	in, ok := s.nodes[node]
	s.mu.Unlock()
	if !ok {
		if err := s.refreshNodes(ctx); err != nil {
			return nil, err
		}
		s.mu.Lock()
		in, ok = s.nodes[node]
		s.mu.Unlock()
		if !ok {
			return nil, fmt.Errorf("the %s provider does not know node %s", s.lab.Provider.Type, node)
		}
	}
	if in.State == provider.StateMissing || in.State == provider.StateStopped {
		return nil, fmt.Errorf("node is %s; run lab up to create or start it", in.State)
	}
	tr, err := s.transport()
	if err != nil {
		return nil, err
	}
	t := ssh.Target{Name: node, Host: in.Host, Port: in.Port, User: in.User}
	for _, line := range in.HostKeys {
		k, _, _, _, err := gossh.ParseAuthorizedKey([]byte(line))
		if err != nil {
			return nil, fmt.Errorf("provider gave an unreadable host key: %w", err)
		}
		t.HostKeys = append(t.HostKeys, k)
	}
	c, err := tr.Client(ctx, t)
	if err != nil {
		return nil, err
	}
	return conn{c: c, node: node, rep: s.rep}, nil
}

// conn adapts an SSH client to phases.Conn.
type conn struct {
	c    *ssh.Client
	node string
	rep  workflow.Reporter
}

func (c conn) Run(ctx context.Context, cmd string) (string, error) {
	out, err := c.c.Output(ctx, cmd)
	return string(out), err
}

// MaskSecrets implements phases.SecretMasker: the transport masks them in
// every node's output and errors from now on.
func (c conn) MaskSecrets(secrets ...string) { c.c.Secrets().Add(secrets...) }

func (c conn) Upload(ctx context.Context, files []templates.File) (int, error) {
	up := make([]ssh.File, len(files))
	for i, f := range files {
		up[i] = ssh.File{Dst: f.Path, Data: f.Content, Mode: f.Mode}
	}
	return c.upload(ctx, up)
}

// UploadLocal implements phases.LocalUploader: files are streamed from disk
// and skipped where the node already has them.
func (c conn) UploadLocal(ctx context.Context, files []phases.LocalFile) (int, error) {
	up := make([]ssh.File, len(files))
	for i, f := range files {
		up[i] = ssh.File{Dst: f.Dst, Src: f.Src, Mode: f.Mode}
	}
	return c.upload(ctx, up)
}

// upload sends files and returns how many it wrote or fixed. Big transfers
// (lab-node, helm, Kubernetes binaries and images) say how fast they went.
func (c conn) upload(ctx context.Context, files []ssh.File) (int, error) {
	st, err := c.c.Upload(ctx, files...)
	if err == nil && st.Bytes >= 1<<20 {
		c.rep.Event(workflow.Event{Kind: workflow.Progress, Node: c.node, Bytes: st.Bytes, Elapsed: st.Elapsed,
			Message: fmt.Sprintf("(%d files written, %d unchanged)", st.Written, st.Files-st.Written-st.Fixed)})
	}
	return st.Written + st.Fixed, err
}

func expandHome(p string) string {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		if h, err := os.UserHomeDir(); err == nil {
			return filepath.Join(h, rest)
		}
	}
	return p
}

func removeIfExists(p string) error {
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// keyFiles are the private keys lab offers, in order: the lab file's, the
// provider's, then the user's default key if it exists.
func (s *session) keyFiles() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keyFilesLocked()
}

func (s *session) keyFilesLocked() []string {
	keys := append([]string(nil), s.lab.SSH.KeyFiles...)
	seen := map[string]bool{}
	for _, name := range nodeNames(s.lab) {
		if in := s.nodes[name]; in.KeyFile != "" && !seen[in.KeyFile] {
			seen[in.KeyFile] = true
			keys = append(keys, in.KeyFile)
		}
	}
	if k := s.opts.DefaultKey; k != "" {
		if _, err := os.Stat(expandHome(k)); err == nil {
			keys = append(keys, k)
		}
	}
	return keys
}

// sources resolves where the files lab pushes to nodes come from.
func (o Options) sources() phases.Sources {
	a := phases.Sources{LabNodeDir: o.LabNodeDir, Helm: o.Helm, CacheDir: o.CacheDir, Userland: o.Userland, Cilium: o.Cilium}
	if a.LabNodeDir == "" {
		if exe, err := os.Executable(); err == nil {
			a.LabNodeDir = filepath.Dir(exe)
		}
	}
	return a
}
