package vagrant

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/labctl/lab/provision/labfile"
	"github.com/labctl/lab/provision/provider"
)

// fakeVagrant is a stand-in for the vagrant command that records its
// arguments and environment and answers status and ssh-config the way
// Vagrant 2.3 prints them. VirtualBox cannot run on lab's CI machines; the
// real Vagrantfile is judged by `vagrant validate` in internal/vagrantcheck.
const fakeVagrant = `#!/bin/sh
echo "$@" >> "$LOG"
env | grep -E '^(LAB_FILE|VAGRANT_CWD|VAGRANT_VAGRANTFILE|VAGRANT_DOTFILE_PATH)=' | sort >> "$LOG"
case "$1" in
status) cat <<'OUT'
1700000000,k8s-ctr,metadata,provider,virtualbox
1700000000,k8s-ctr,state,running
1700000000,k8s-w1,state,poweroff
1700000000,k8s-w2,state,not_created
OUT
;;
ssh-config) cat <<'OUT'
Host k8s-ctr
  HostName 127.0.0.1
  User vagrant
  Port 2222
  UserKnownHostsFile /dev/null
  IdentityFile "/home/u/.vagrant/machines/k8s-ctr/virtualbox/private_key"
  IdentitiesOnly yes
OUT
;;
destroy) [ -n "$FAIL" ] && { echo "boom" >&2; exit 1; } ;;
esac
exit 0
`

func setup(t *testing.T) (*Provider, *labfile.Lab, string) {
	t.Helper()
	repo := t.TempDir()
	if err := os.MkdirAll(filepath.Join(repo, "labs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, "Vagrantfile"), []byte("# lab\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("../../../labs/cilium-study.yaml")
	if err != nil {
		t.Fatal(err)
	}
	labPath := filepath.Join(repo, "labs", "study.yaml")
	if err := os.WriteFile(labPath, src, 0o644); err != nil {
		t.Fatal(err)
	}
	l, _, err := labfile.Load(labPath)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "vagrant")
	if err := os.WriteFile(bin, []byte(fakeVagrant), 0o755); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(t.TempDir(), "log")
	t.Setenv("LOG", log)
	state := t.TempDir()
	p, err := New(Options{StateDir: state, Binary: bin})
	if err != nil {
		t.Fatal(err)
	}
	return p, l, log
}

func TestCreateRunsVagrantUpWithTheLabsOwnMachineDir(t *testing.T) {
	p, l, log := setup(t)
	if err := p.Create(context.Background(), l); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(log)
	repo := filepath.Dir(filepath.Dir(l.Path))
	for _, want := range []string{
		"up --provider virtualbox",
		"LAB_FILE=" + l.Path,
		"VAGRANT_CWD=" + repo,
		"VAGRANT_VAGRANTFILE=Vagrantfile",
		"VAGRANT_DOTFILE_PATH=" + filepath.Join(p.o.StateDir, "vagrant"),
	} {
		if !strings.Contains(string(got), want) {
			t.Errorf("vagrant was not run with %q:\n%s", want, got)
		}
	}
}

func TestNodesReadStatusAndSSHConfig(t *testing.T) {
	p, l, _ := setup(t)
	infos, err := p.Nodes(context.Background(), l)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]provider.State{"k8s-ctr": provider.StateRunning, "k8s-w1": provider.StateStopped, "k8s-w2": provider.StateMissing}
	for _, in := range infos {
		if in.State != want[in.Name] {
			t.Errorf("%s: state %s, want %s", in.Name, in.State, want[in.Name])
		}
		if len(in.HostKeys) != 0 {
			t.Errorf("%s: vagrant pinned a host key it cannot know", in.Name)
		}
	}
	ctr := infos[0]
	if ctr.Host != "192.168.10.100" || ctr.Port != 22 || ctr.User != "vagrant" ||
		ctr.KeyFile != "/home/u/.vagrant/machines/k8s-ctr/virtualbox/private_key" {
		t.Errorf("k8s-ctr target %+v", ctr)
	}
}

func TestDeleteReportsVagrantsError(t *testing.T) {
	p, l, _ := setup(t)
	if err := p.Delete(context.Background(), l); err != nil {
		t.Fatalf("nothing created yet, so nothing to destroy: %v", err)
	}
	if err := os.MkdirAll(filepath.Join(p.o.StateDir, "vagrant"), 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("FAIL", "1")
	err := p.Delete(context.Background(), l)
	if err == nil || !strings.Contains(err.Error(), "vagrant destroy -f") || !strings.Contains(err.Error(), "boom") {
		t.Errorf("destroy error: %v", err)
	}
}

func TestNoVagrantfile(t *testing.T) {
	p, _ := New(Options{StateDir: t.TempDir()})
	l := &labfile.Lab{Path: filepath.Join(t.TempDir(), "lab.yaml")}
	if _, err := p.vagrantfile(l); err == nil || !strings.Contains(err.Error(), "no Vagrantfile") {
		t.Errorf("got %v", err)
	}
}
