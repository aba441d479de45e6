package vagrant

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/labctl/lab/provision/labfile"
)

var update = flag.Bool("update", false, "rewrite testdata/*.vagrant-vms.json")

// TestVMListOfTheLabs pins the VM list of every vagrant lab in labs/ to
// testdata/<lab>.vagrant-vms.json: what the Vagrantfile is handed for the
// study lab and the HA labs, every default resolved.
func TestVMListOfTheLabs(t *testing.T) {
	files, err := filepath.Glob("../../../labs/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, f := range files {
		l, _, err := labfile.Load(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if l.Provider.Type != labfile.ProviderVagrant {
			continue
		}
		seen++
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		t.Run(name, func(t *testing.T) {
			list, err := NewVMList(l)
			if err != nil {
				t.Fatal(err)
			}
			got, err := list.JSON()
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", name+".vagrant-vms.json")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (go test ./provision/provider/vagrant -update writes it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("the VM list of %s is not %s (go test -update rewrites it):\n%s", f, golden, got)
			}
		})
	}
	if seen < 2 {
		t.Fatalf("found %d vagrant labs in labs/, want the study lab and the HA labs", seen)
	}
}

// TestStudyLabVMs spells out the study lab's list, so the golden files
// cannot drift from what the lab file says by being rewritten.
func TestStudyLabVMs(t *testing.T) {
	l, _, err := labfile.Load("../../../labs/cilium-study.yaml")
	if err != nil {
		t.Fatal(err)
	}
	list, err := NewVMList(l)
	if err != nil {
		t.Fatal(err)
	}
	if list.Format != VMListFormat || list.Lab != "cilium-study" || list.Provider != ProviderVirtualBox || len(list.VMs) != 3 {
		t.Fatalf("list %+v", list)
	}
	want := VM{
		Name: "k8s-ctr", Hostname: "k8s-ctr", Box: "bento/ubuntu-24.04", CPUs: 2, Memory: 2560,
		NICs: []NIC{{Network: "lab", IP: "192.168.10.100", Netmask: "255.255.255.0"}},
		VirtualBox: &VirtualBox{
			Name: "cilium-study-k8s-ctr", LinkedClone: true,
			ModifyVM: [][]string{{"--groups", "/Cilium-Lab"}, {"--nestedpaging", "on"}, {"--nicpromisc2", "allow-all"}},
		},
	}
	if !reflect.DeepEqual(list.VMs[0], want) {
		t.Errorf("k8s-ctr:\n got %+v %+v\nwant %+v %+v", list.VMs[0], *list.VMs[0].VirtualBox, want, *want.VirtualBox)
	}
	if w1 := list.VMs[1]; w1.Name != "k8s-w1" || w1.Memory != 1536 || w1.NICs[0].IP != "192.168.10.101" {
		t.Errorf("k8s-w1: %+v", w1)
	}
}

// TestVMListDefaultsAndNICOrder: sizes left out take provision/labfile's
// defaults, and the node network is the first NIC even when listed second.
func TestVMListDefaultsAndNICOrder(t *testing.T) {
	l, _, err := labfile.Parse("routed.yaml", []byte(`apiVersion: lab/v1alpha1
kind: Lab
metadata: {name: routed}
provider:
  type: vagrant
  vagrant: {boxVersion: "202502.21.0", linkedClone: false}
networks:
  - {name: edge, cidr: 192.168.20.0/24}
  - {name: lab, cidr: 192.168.56.0/22}
kubernetes: {nodeNetwork: lab}
nodes:
  - {name: k8s-ctr, roles: [control-plane], addresses: {lab: 192.168.56.100}}
  - {name: router, roles: [router], addresses: {edge: 192.168.20.200, lab: 192.168.56.200}, cpus: 1, memory: 768}
`))
	if err != nil {
		t.Fatal(err)
	}
	list, err := NewVMList(l)
	if err != nil {
		t.Fatal(err)
	}
	ctr, router := list.VMs[0], list.VMs[1]
	if ctr.Box != labfile.DefaultVagrantBox || ctr.BoxVersion != "202502.21.0" ||
		ctr.CPUs != labfile.DefaultVagrantCPUs || ctr.Memory != labfile.DefaultVagrantMemory || ctr.VirtualBox.LinkedClone {
		t.Errorf("k8s-ctr: %+v %+v", ctr, *ctr.VirtualBox)
	}
	wantNICs := []NIC{
		{Network: "lab", IP: "192.168.56.200", Netmask: "255.255.252.0"},
		{Network: "edge", IP: "192.168.20.200", Netmask: "255.255.255.0"},
	}
	if !reflect.DeepEqual(router.NICs, wantNICs) || router.CPUs != 1 || router.Memory != 768 {
		t.Errorf("router: %+v", router)
	}
	wantModify := [][]string{{"--nestedpaging", "on"}, {"--nicpromisc2", "allow-all"}, {"--nicpromisc3", "allow-all"}}
	if !reflect.DeepEqual(router.VirtualBox.ModifyVM, wantModify) {
		t.Errorf("router modifyvm: %v", router.VirtualBox.ModifyVM)
	}
}

func TestVMListRefusesOtherProviders(t *testing.T) {
	l, _, err := labfile.Load("../../../labs/ci.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, err = NewVMList(l)
	if err == nil || !strings.Contains(err.Error(), "ci.yaml: provider.type is docker, not vagrant") {
		t.Errorf("got %v", err)
	}
}
