// Package vagrant is the provider for VirtualBox VMs made by Vagrant. lab
// carries its own Vagrantfile (embedded in the binary) and resolves the lab
// file into a list of VMs (VMList); before every vagrant command it writes
// both into the lab's state directory and runs vagrant there, so a lab binary
// installed on its own can run a vagrant lab from any directory. lab runs
// `vagrant up`, `vagrant status`, `vagrant ssh-config` and `vagrant destroy`,
// then reaches each VM over SSH on its lab-network address like any other
// host.
package vagrant

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/labctl/lab/internal/atomicfile"

	"github.com/labctl/lab/provision/labfile"
	"github.com/labctl/lab/provision/provider"
)

// embeddedVagrantfile is lab's Vagrantfile. The repository's top-level
// Vagrantfile is a copy of it for people who run Vagrant by hand; a test
// keeps the two equal.
//
//go:embed Vagrantfile
var embeddedVagrantfile []byte

// Options configure a Provider.
type Options struct {
	// StateDir is the lab's state directory. lab writes its Vagrantfile and
	// the VM list there and runs vagrant in it; Vagrant's machine records go
	// in StateDir/vagrant, so two labs with a node of the same name never
	// share a VM.
	StateDir string
	// Vagrantfile, if set, is a Vagrantfile written to the state directory
	// in place of the one built into lab: for trying changes to it without
	// rebuilding lab.
	Vagrantfile string
	// Binary is the vagrant command. Default: vagrant on PATH.
	Binary string
}

// Provider creates VirtualBox VMs through Vagrant.
type Provider struct {
	o Options
}

var _ provider.Provider = (*Provider)(nil)

// New returns a Provider. It does not run vagrant yet.
func New(o Options) (*Provider, error) {
	if o.StateDir == "" {
		return nil, errors.New("vagrant provider: no state directory")
	}
	if o.Binary == "" {
		o.Binary = "vagrant"
	}
	return &Provider{o: o}, nil
}

// machineDir is Vagrant's own directory for the lab's machines
// (VAGRANT_DOTFILE_PATH).
func (p *Provider) machineDir() string { return filepath.Join(p.o.StateDir, "vagrant") }

// Prepare writes into dir what vagrant needs to make lab l's VMs: lab's
// Vagrantfile and, beside it, the VM list it applies (VMListFile). Both are
// 0600 and written atomically, so a vagrant that runs meanwhile reads the
// old files or the new ones, never half of one. vagrantfile replaces the
// embedded Vagrantfile when it is not nil.
func Prepare(dir string, l *labfile.Lab, vagrantfile []byte) error {
	list, err := NewVMList(l)
	if err != nil {
		return err
	}
	js, err := list.JSON()
	if err != nil {
		return err
	}
	if vagrantfile == nil {
		vagrantfile = embeddedVagrantfile
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{"Vagrantfile", vagrantfile}, {VMListFile, js}} {
		// Unchanged files stay as they are: commands that only look
		// (status, up --dry-run) then write nothing.
		path := filepath.Join(dir, f.name)
		if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, f.data) {
			if fi, err := os.Stat(path); err == nil && fi.Mode().Perm() == 0o600 {
				continue
			}
		}
		if err := atomicfile.WriteFile(filepath.Join(dir, f.name), f.data, 0o600); err != nil {
			return fmt.Errorf("vagrant provider: writing the %s of lab %s: %w", f.name, l.Metadata.Name, err)
		}
	}
	return nil
}

// prepare writes the Vagrantfile and the VM list into the state directory.
func (p *Provider) prepare(l *labfile.Lab) error {
	var vf []byte
	if p.o.Vagrantfile != "" {
		b, err := os.ReadFile(p.o.Vagrantfile)
		if err != nil {
			return fmt.Errorf("vagrant provider: the Vagrantfile setting (LAB_VAGRANTFILE): %w; unset it to use the Vagrantfile built into lab", err)
		}
		vf = b
	}
	return Prepare(p.o.StateDir, l, vf)
}

// vagrant runs one vagrant command for lab l in the state directory and
// returns its output.
func (p *Provider) vagrant(ctx context.Context, l *labfile.Lab, args ...string) ([]byte, error) {
	if err := p.prepare(l); err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, p.o.Binary, args...)
	cmd.Dir = p.o.StateDir
	cmd.Env = append(os.Environ(),
		"VAGRANT_CWD="+p.o.StateDir,
		"VAGRANT_VAGRANTFILE=Vagrantfile",
		"VAGRANT_DOTFILE_PATH="+p.machineDir(),
		"VAGRANT_CHECKPOINT_DISABLE=1",
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(stdout.String())
		}
		if lines := strings.Split(msg, "\n"); len(lines) > 15 {
			msg = strings.Join(lines[len(lines)-15:], "\n")
		}
		return stdout.Bytes(), fmt.Errorf("vagrant %s (in %s): %w: %s", strings.Join(args, " "), p.o.StateDir, err, msg)
	}
	return stdout.Bytes(), nil
}

// Create runs `vagrant up`: VMs that run are kept, stopped ones started,
// missing ones created from the VM list.
func (p *Provider) Create(ctx context.Context, l *labfile.Lab) error {
	list, err := NewVMList(l)
	if err != nil {
		return err
	}
	_, err = p.vagrant(ctx, l, "up", "--provider", list.Provider)
	return err
}

// Delete runs `vagrant destroy -f` for the lab's VMs.
func (p *Provider) Delete(ctx context.Context, l *labfile.Lab) error {
	if _, err := os.Stat(p.machineDir()); errors.Is(err, os.ErrNotExist) {
		return nil // vagrant never made anything for this lab
	}
	_, err := p.vagrant(ctx, l, "destroy", "-f")
	return err
}

// Nodes reports each VM's state (`vagrant status`) and how to reach it:
// its lab-network address on port 22, as the user and key `vagrant
// ssh-config` names. Vagrant cannot show a VM's host key out of band, so
// none is pinned: the lab's accept-new or strict policy applies.
func (p *Provider) Nodes(ctx context.Context, l *labfile.Lab) ([]provider.NodeInfo, error) {
	states := map[string]provider.State{}
	// Without Vagrant's machine directory no VM of this lab exists; asking
	// vagrant would only write its files into a state directory that a
	// command that only looks must not create.
	if _, err := os.Stat(p.machineDir()); err == nil {
		out, err := p.vagrant(ctx, l, "status", "--machine-readable")
		if err != nil {
			return nil, err
		}
		states = parseStatus(out)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("vagrant provider: %w", err)
	}
	var cfg map[string]sshConfig
	if anyRunning(states) {
		raw, err := p.vagrant(ctx, l, "ssh-config")
		if err != nil {
			return nil, err
		}
		cfg = parseSSHConfig(raw)
	}
	infos := make([]provider.NodeInfo, 0, len(l.Nodes))
	for i := range l.Nodes {
		n := &l.Nodes[i]
		host, port, user := l.SSHTarget(n)
		info := provider.NodeInfo{Name: n.Name, State: states[n.Name], Host: host, Port: port, User: user}
		if info.State == "" {
			info.State = provider.StateMissing
		}
		if c, ok := cfg[n.Name]; ok {
			if n.SSH == nil || n.SSH.User == "" {
				info.User = c.User
			}
			info.KeyFile = c.IdentityFile
		}
		infos = append(infos, info)
	}
	return infos, nil
}

func anyRunning(states map[string]provider.State) bool {
	for _, s := range states {
		if s == provider.StateRunning {
			return true
		}
	}
	return false
}

// parseStatus reads `vagrant status --machine-readable`: lines of
// time,target,type,data; the "state" lines say each machine's state.
func parseStatus(out []byte) map[string]provider.State {
	states := map[string]provider.State{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), ",", 4)
		if len(f) < 4 || f[2] != "state" || f[1] == "" {
			continue
		}
		switch f[3] {
		case "running":
			states[f[1]] = provider.StateRunning
		case "not_created":
			states[f[1]] = provider.StateMissing
		case "poweroff", "aborted", "saved", "stopped", "paused":
			states[f[1]] = provider.StateStopped
		default:
			states[f[1]] = provider.StateUnknown
		}
	}
	return states
}

type sshConfig struct {
	User         string
	IdentityFile string
}

// parseSSHConfig reads `vagrant ssh-config`: one "Host NAME" block per VM.
func parseSSHConfig(out []byte) map[string]sshConfig {
	cfgs := map[string]sshConfig{}
	var host string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		key, val, ok := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		if !ok {
			continue
		}
		val = strings.Trim(strings.TrimSpace(val), `"`)
		c := cfgs[host]
		switch key {
		case "Host":
			host = val
			continue
		case "User":
			c.User = val
		case "IdentityFile":
			if c.IdentityFile == "" {
				c.IdentityFile = val
			}
		default:
			continue
		}
		if host != "" {
			cfgs[host] = c
		}
	}
	return cfgs
}
