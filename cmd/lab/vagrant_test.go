package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/labctl/lab/provision/labfile"
	"github.com/labctl/lab/provision/provider/vagrant"
)

// run runs lab with args and returns its stdout and stderr.
func run(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	t.Setenv("XDG_CONFIG_HOME", t.TempDir()) // no user settings
	root := newRootCommand()
	var stdout, stderr bytes.Buffer
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return stdout.String(), stderr.String(), err
}

// TestVagrantVMsPrintsTheVMList: what the Vagrantfile reads from `lab
// vagrant-vms` by hand is what `lab up` writes beside it, and only that is
// on stdout; lab file warnings go to stderr.
func TestVagrantVMsPrintsTheVMList(t *testing.T) {
	const file = "../../labs/cilium-study.yaml"
	stdout, stderr, err := run(t, "vagrant-vms", file)
	if err != nil {
		t.Fatal(err)
	}
	l, _, err := labfile.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	list, err := vagrant.NewVMList(l)
	if err != nil {
		t.Fatal(err)
	}
	want, err := list.JSON()
	if err != nil {
		t.Fatal(err)
	}
	if stdout != string(want) {
		t.Errorf("stdout:\n%s\nwant:\n%s", stdout, want)
	}
	if !strings.Contains(stderr, "warning: networks[0].cidr: VirtualBox") {
		t.Errorf("the lab file's warning is not on stderr: %q", stderr)
	}
}

func TestVagrantVMsRefusesOtherProviders(t *testing.T) {
	stdout, _, err := run(t, "vagrant-vms", "../../labs/ci.yaml")
	if err == nil || !strings.Contains(err.Error(), "provider.type is docker, not vagrant") || stdout != "" {
		t.Errorf("got %v, stdout %q", err, stdout)
	}
}

// TestVagrantVMsIsHidden: the command is the Vagrantfile's, not the user's.
func TestVagrantVMsIsHidden(t *testing.T) {
	stdout, _, err := run(t, "--help")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stdout, "vagrant-vms") {
		t.Errorf("lab --help lists vagrant-vms:\n%s", stdout)
	}
}
