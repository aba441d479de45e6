package vagrant

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/labctl/lab/provision/labfile"
	"github.com/labctl/lab/provision/provider"
)

// fakeVagrant is a stand-in for the vagrant command that records its
// arguments, working directory and environment, keeps a copy of the
// Vagrantfile and VM list it would read, and answers status and ssh-config
// the way Vagrant 2.3 prints them. VirtualBox cannot run on lab's CI
// machines; the real Vagrantfile is judged by `vagrant validate` in
// internal/vagrantcheck.
const fakeVagrant = `#!/bin/sh
echo "$@" >> "$LOG"
echo "pwd=$(pwd)" >> "$LOG"
env | grep -E '^(VAGRANT_CWD|VAGRANT_VAGRANTFILE|VAGRANT_DOTFILE_PATH)=' | sort >> "$LOG"
cp "$VAGRANT_CWD/$VAGRANT_VAGRANTFILE" "$LOG.Vagrantfile" || exit 1
cp "$VAGRANT_CWD/vagrant-vms.json" "$LOG.json" || exit 1
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

// setup copies the study lab to a directory with no Vagrantfile in it or
// above it, and runs the test from another such directory: lab must bring
// its own Vagrantfile, as an installed binary does.
func setup(t *testing.T) (*Provider, *labfile.Lab, string) {
	t.Helper()
	src, err := os.ReadFile("../../../labs/cilium-study.yaml")
	if err != nil {
		t.Fatal(err)
	}
	labPath := filepath.Join(t.TempDir(), "study.yaml")
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
	t.Chdir(t.TempDir())
	state := t.TempDir()
	p, err := New(Options{StateDir: state, Binary: bin})
	if err != nil {
		t.Fatal(err)
	}
	return p, l, log
}

// TestCreateRunsVagrantInTheStateDir: `vagrant up` runs in the lab's state
// directory, whatever the current directory, on the embedded Vagrantfile
// and the lab's VM list written there, with the lab's own machine records.
func TestCreateRunsVagrantInTheStateDir(t *testing.T) {
	p, l, log := setup(t)
	if err := p.Create(context.Background(), l); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(log)
	dir := p.o.StateDir
	for _, want := range []string{
		"up --provider virtualbox\n",
		"pwd=" + dir + "\n",
		"VAGRANT_CWD=" + dir + "\n",
		"VAGRANT_VAGRANTFILE=Vagrantfile\n",
		"VAGRANT_DOTFILE_PATH=" + filepath.Join(dir, "vagrant") + "\n",
	} {
		if !strings.Contains(string(got), want) {
			t.Errorf("vagrant was not run with %q:\n%s", want, got)
		}
	}
	if vf, _ := os.ReadFile(log + ".Vagrantfile"); !bytes.Equal(vf, embeddedVagrantfile) {
		t.Errorf("vagrant saw a Vagrantfile other than the embedded one:\n%s", vf)
	}
	var list VMList
	js, _ := os.ReadFile(log + ".json")
	if err := json.Unmarshal(js, &list); err != nil {
		t.Fatalf("vagrant saw no VM list: %v\n%s", err, js)
	}
	want, err := NewVMList(l)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&list, want) {
		t.Errorf("vagrant saw the VM list\n%s\nwant %+v", js, want)
	}
	for _, name := range []string{"Vagrantfile", VMListFile} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600 like every file of the state directory", name, fi.Mode().Perm())
		}
	}
}

// TestVagrantfileSetting: LAB_VAGRANTFILE puts another Vagrantfile in the
// state directory, and a missing one says which setting is wrong.
func TestVagrantfileSetting(t *testing.T) {
	p, l, log := setup(t)
	own := filepath.Join(t.TempDir(), "Vagrantfile")
	if err := os.WriteFile(own, []byte("# mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.o.Vagrantfile = own
	if err := p.Create(context.Background(), l); err != nil {
		t.Fatal(err)
	}
	if vf, _ := os.ReadFile(log + ".Vagrantfile"); string(vf) != "# mine\n" {
		t.Errorf("vagrant saw %q, want the Vagrantfile setting's", vf)
	}
	p.o.Vagrantfile = filepath.Join(t.TempDir(), "missing")
	if err := p.Create(context.Background(), l); err == nil || !strings.Contains(err.Error(), "LAB_VAGRANTFILE") {
		t.Errorf("missing Vagrantfile setting: %v", err)
	}
}

// TestEmbeddedVagrantfileIsTheRepositorys keeps the repository's top-level
// Vagrantfile, the one people read and run by hand, equal to the one lab
// carries.
func TestEmbeddedVagrantfileIsTheRepositorys(t *testing.T) {
	top, err := os.ReadFile("../../../Vagrantfile")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(top, embeddedVagrantfile) {
		t.Errorf("the top-level Vagrantfile differs from provision/provider/vagrant/Vagrantfile, which lab embeds; edit the latter and copy it:\n\tcp provision/provider/vagrant/Vagrantfile Vagrantfile")
	}
}

// TestNodesOfANewLabAskNoOne: before vagrant has made any machine of the
// lab, every node is missing, and neither vagrant runs nor anything is
// written (lab up --dry-run and lab status only look).
func TestNodesOfANewLabAskNoOne(t *testing.T) {
	p, l, log := setup(t)
	infos, err := p.Nodes(context.Background(), l)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range infos {
		if in.State != provider.StateMissing {
			t.Errorf("%s: state %s, want missing", in.Name, in.State)
		}
	}
	if _, err := os.Stat(log); err == nil {
		t.Error("vagrant ran for a lab it has no machines of")
	}
	if entries, _ := os.ReadDir(p.o.StateDir); len(entries) > 0 {
		t.Errorf("Nodes wrote into the state directory: %v", entries)
	}
}

func TestNodesReadStatusAndSSHConfig(t *testing.T) {
	p, l, _ := setup(t)
	// What `vagrant up` leaves: its machine directory.
	if err := os.MkdirAll(p.machineDir(), 0o700); err != nil {
		t.Fatal(err)
	}
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
