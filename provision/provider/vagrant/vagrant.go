// Package vagrant is the provider for VirtualBox VMs made by Vagrant from
// the repository's Vagrantfile, which reads the lab file itself. lab runs
// `vagrant up`, `vagrant status`, `vagrant ssh-config` and `vagrant destroy`
// with the lab's own machine directory, then reaches each VM over SSH on
// its lab-network address like any other host.
package vagrant

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/labctl/lab/provision/labfile"
	"github.com/labctl/lab/provision/provider"
)

// Options configure a Provider.
type Options struct {
	// StateDir is the lab's state directory; Vagrant's machine records go
	// in StateDir/vagrant, so two labs with a node of the same name never
	// share a VM.
	StateDir string
	// Vagrantfile is lab's Vagrantfile. Default: the first Vagrantfile in
	// the lab file's directory or one of its parents (the repository's).
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

// vagrantfile finds the Vagrantfile for lab l.
func (p *Provider) vagrantfile(l *labfile.Lab) (string, error) {
	if p.o.Vagrantfile != "" {
		return filepath.Abs(p.o.Vagrantfile)
	}
	if l.Path == "" {
		return "", errors.New("vagrant provider: the lab was not loaded from a file, and no Vagrantfile was given")
	}
	dir, err := filepath.Abs(filepath.Dir(l.Path))
	if err != nil {
		return "", err
	}
	for {
		candidate := filepath.Join(dir, "Vagrantfile")
		if _, err := os.Stat(candidate); err == nil {
			return candidate, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("vagrant provider: no Vagrantfile beside %s or in a parent directory; keep lab files in a clone of lab's repository or set LAB_VAGRANTFILE", l.Path)
		}
		dir = parent
	}
}

// vagrant runs one vagrant command for lab l and returns its output.
func (p *Provider) vagrant(ctx context.Context, l *labfile.Lab, args ...string) ([]byte, error) {
	vf, err := p.vagrantfile(l)
	if err != nil {
		return nil, err
	}
	labPath, err := filepath.Abs(l.Path)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, p.o.Binary, args...)
	cmd.Env = append(os.Environ(),
		"VAGRANT_CWD="+filepath.Dir(vf),
		"VAGRANT_VAGRANTFILE="+filepath.Base(vf),
		"VAGRANT_DOTFILE_PATH="+filepath.Join(p.o.StateDir, "vagrant"),
		"VAGRANT_CHECKPOINT_DISABLE=1",
		"LAB_FILE="+labPath,
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
		return stdout.Bytes(), fmt.Errorf("vagrant %s: %w: %s", strings.Join(args, " "), err, msg)
	}
	return stdout.Bytes(), nil
}

// Create runs `vagrant up`: VMs that run are kept, stopped ones started,
// missing ones created from the Vagrantfile.
func (p *Provider) Create(ctx context.Context, l *labfile.Lab) error {
	_, err := p.vagrant(ctx, l, "up", "--provider", "virtualbox")
	return err
}

// Delete runs `vagrant destroy -f` for the lab's VMs.
func (p *Provider) Delete(ctx context.Context, l *labfile.Lab) error {
	if _, err := os.Stat(filepath.Join(p.o.StateDir, "vagrant")); errors.Is(err, os.ErrNotExist) {
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
	out, err := p.vagrant(ctx, l, "status", "--machine-readable")
	if err != nil {
		return nil, err
	}
	states := parseStatus(out)
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
