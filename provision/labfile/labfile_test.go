package labfile

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBadLabs loads every file in testdata/bad and checks that loading fails
// with the message named on its first line ("# want: ...").
func TestBadLabs(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.yaml")
	if err != nil || len(files) < 25 {
		t.Fatalf("want at least 25 bad lab files, have %d (%v)", len(files), err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			first, _, _ := bytes.Cut(data, []byte("\n"))
			want, ok := strings.CutPrefix(string(first), "# want: ")
			if !ok {
				t.Fatalf("%s: first line must be '# want: <message>'", f)
			}
			_, _, err = Parse("bad.yaml", data)
			if err == nil {
				t.Fatalf("loaded without error; want %q", want)
			}
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("error\n%s\ndoes not contain\n%s", err, want)
			}
			if !strings.HasPrefix(err.Error(), "bad.yaml") {
				t.Errorf("error does not start with the file name: %s", err)
			}
		})
	}
}

func TestExampleLabsLoad(t *testing.T) {
	files, _ := filepath.Glob("../../labs/*.yaml")
	weeks, _ := filepath.Glob("../../labs/*/*.yaml")
	files = append(files, weeks...)
	if len(files) < 4 {
		t.Fatalf("want at least 4 labs, have %d", len(files))
	}
	for _, f := range files {
		lab, warns, err := Load(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		for _, w := range warns {
			t.Logf("%s", w)
		}
		if lab.Metadata.Name == "" || len(lab.ControlPlanes()) == 0 {
			t.Errorf("%s: defaults missing: %+v", f, lab)
		}
	}
}

const goodHA = `apiVersion: lab/v1alpha1
kind: Lab
metadata: {name: ha}
networks:
  - {name: lab, cidr: 192.168.56.0/24}
controlPlane: {vip: 192.168.56.10}
nodes:
  - {name: cp1, roles: [control-plane], addresses: {lab: 192.168.56.11}}
  - {name: cp2, roles: [control-plane], addresses: {lab: 192.168.56.12}}
  - {name: cp3, roles: [control-plane], addresses: {lab: 192.168.56.13}}
  - {name: w1, roles: [worker], addresses: {lab: 192.168.56.21}}
`

func TestDefaults(t *testing.T) {
	lab, warns, err := Parse("ha.yaml", []byte(goodHA))
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 0 {
		t.Errorf("unexpected warnings: %v", warns)
	}
	cp := lab.ControlPlane
	if cp.Mode != EndpointVIP || cp.APIPort != 6443 || cp.LBPort != 8443 {
		t.Errorf("endpoint defaults: %+v", cp)
	}
	if got := lab.EndpointString(); got != "192.168.56.10:8443" {
		t.Errorf("endpoint %q", got)
	}
	if lab.Provider.Type != ProviderDocker || lab.SSH.KnownHosts != KnownHostsPinned {
		t.Errorf("provider defaults: %+v %+v", lab.Provider, lab.SSH)
	}
	if lab.Kubernetes.Version != DefaultKubernetesVersion || lab.CNI.Type != CNIBuiltin {
		t.Errorf("kubernetes defaults: %+v", lab.Kubernetes)
	}
	if got := len(lab.LoadBalancers()); got != 3 {
		t.Errorf("load balancers: %d", got)
	}
	if got := len(lab.KubernetesNodes()); got != 4 {
		t.Errorf("kubernetes nodes: %d", got)
	}
	// Defaulting twice changes nothing.
	before := *lab
	Default(lab)
	if lab.ControlPlane != before.ControlPlane || lab.Kubernetes.Version != before.Kubernetes.Version {
		t.Errorf("Default is not idempotent")
	}
}

// TestEveryProblemAtOnce checks that validation does not stop at the first
// problem and that each one carries its own line.
func TestEveryProblemAtOnce(t *testing.T) {
	src := `apiVersion: lab/v1alpha1
kind: Lab
metadata: {name: many}
networks:
  - {name: lab, cidr: 192.168.10.0/24}
kubernetes:
  version: "1.29.0"
  podSubnet: 192.168.0.0/16
nodes:
  - {name: Bad_Name, roles: [control-plane], addresses: {lab: 192.168.10.11}}
  - {name: w1, roles: [worker], addresses: {lab: 192.168.10.11}}
`
	_, _, err := Parse("many.yaml", []byte(src))
	if err == nil {
		t.Fatal("no error")
	}
	want := []string{
		"many.yaml:7:12: error: kubernetes.version",
		"many.yaml:8:14: error: kubernetes.podSubnet",
		"many.yaml:10:12: error: nodes[0].name",
		"many.yaml:11:50: error: nodes[1].addresses.lab",
	}
	lines := bufio.NewScanner(strings.NewReader(err.Error()))
	var got []string
	for lines.Scan() {
		got = append(got, lines.Text())
	}
	if len(got) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%s", len(got), len(want), err)
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("problem %d:\n got %s\nwant %s...", i, got[i], want[i])
		}
	}
}

func TestWarnings(t *testing.T) {
	src := `apiVersion: lab/v1alpha1
kind: Lab
metadata: {name: warn}
provider: {type: vagrant}
networks:
  - {name: lab, cidr: 192.168.10.0/24}
controlPlane: {mode: vip, vip: 192.168.10.10}
nodes:
  - {name: cp1, roles: [control-plane], addresses: {lab: 192.168.10.11}, memory: 1024}
  - {name: cp2, roles: [control-plane], addresses: {lab: 192.168.10.12}}
`
	_, warns, err := Parse("warn.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"VirtualBox 6.1.28+ refuses host-only networks",
		"2 control planes: etcd needs a majority",
		"kubeadm's preflight wants 1700 MiB",
	} {
		if !strings.Contains(warns.Error(), want) {
			t.Errorf("warnings lack %q:\n%s", want, warns)
		}
	}
	single := strings.Replace(src, "cp2, roles: [control-plane]", "cp2, roles: [worker]", 1)
	_, warns, err = Parse("warn.yaml", []byte(single))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(warns.Error(), "vip mode with one control plane") {
		t.Errorf("no single-control-plane VIP warning:\n%s", warns)
	}
}

// FuzzParse feeds the loader arbitrary bytes: it must never panic, and
// whatever it accepts must survive validation a second time.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("../../labs/*.yaml")
	weeks, _ := filepath.Glob("../../labs/*/*.yaml")
	bad, _ := filepath.Glob("testdata/bad/*.yaml")
	files = append(files, weeks...)
	for _, p := range append(files, bad...) {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		lab, _, err := Parse("fuzz.yaml", data)
		if err != nil {
			if _, ok := err.(Problems); !ok {
				t.Fatalf("error is %T, not Problems: %v", err, err)
			}
			return
		}
		if errs := Validate(lab).Errors(); len(errs) > 0 {
			t.Fatalf("accepted lab fails validation again: %v", errs)
		}
		lab.EndpointString()
	})
}
