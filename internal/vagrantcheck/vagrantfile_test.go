package vagrantcheck

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/labctl/lab/internal/tooltest"
	"github.com/labctl/lab/provision/labfile"
)

const (
	vagrantfile = "../../Vagrantfile"
	labsDir     = "../../labs"
)

// needTool returns the path of a program the test needs (see tooltest).
func needTool(t *testing.T, name string) string {
	t.Helper()
	return tooltest.Path(t, name, "apt-get install vagrant; it brings ruby")
}

// vagrantLabs returns the lab files of labs/ (and extra) whose provider is
// vagrant, each loaded by provision/labfile.
func vagrantLabs(t *testing.T, extra ...string) map[string]*labfile.Lab {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(labsDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*labfile.Lab{}
	for _, f := range append(files, extra...) {
		lab, _, err := labfile.Load(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if lab.Provider.Type == labfile.ProviderVagrant {
			out[f] = lab
		}
	}
	if _, ok := out[filepath.Join(labsDir, "cilium-study.yaml")]; !ok {
		t.Fatalf("labs/cilium-study.yaml is missing or no longer a vagrant lab; found %d vagrant labs", len(out))
	}
	return out
}

// vagrantEnv is the environment for a vagrant run that touches nothing of
// the user's: its own VAGRANT_HOME and no network check for new versions.
func vagrantEnv(t *testing.T, labFile string) []string {
	t.Helper()
	abs, err := filepath.Abs(labFile)
	if err != nil {
		t.Fatal(err)
	}
	return append(os.Environ(),
		"LAB_FILE="+abs,
		"VAGRANT_HOME="+t.TempDir(),
		"VAGRANT_CHECKPOINT_DISABLE=1",
		"VAGRANT_NO_COLOR=1",
	)
}

// runVagrantValidate runs `vagrant validate --ignore-provider` on a copy of
// the Vagrantfile in a temporary directory, so no .vagrant/ lands in the
// repository, and returns its combined output.
func runVagrantValidate(t *testing.T, vagrant, labFile string) (string, error) {
	t.Helper()
	dir := t.TempDir()
	src, err := os.ReadFile(vagrantfile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Vagrantfile"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, vagrant, "validate", "--ignore-provider")
	cmd.Dir = dir
	cmd.Env = vagrantEnv(t, labFile)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestVagrantValidate has the real vagrant load the Vagrantfile for every
// vagrant lab and check its core settings.
func TestVagrantValidate(t *testing.T) {
	vagrant := needTool(t, "vagrant")
	for file := range vagrantLabs(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			out, err := runVagrantValidate(t, vagrant, file)
			if err != nil || !strings.Contains(out, "Vagrantfile validated successfully.") {
				t.Fatalf("vagrant validate with LAB_FILE=%s: %v\n%s", file, err, out)
			}
		})
	}
}

// TestVagrantRefuses proves that vagrant stops with one clear line for a
// lab that is not a vagrant lab and for a lab file that does not exist.
func TestVagrantRefuses(t *testing.T) {
	vagrant := needTool(t, "vagrant")
	for _, tc := range []struct {
		file, want string
	}{
		{filepath.Join(labsDir, "ci.yaml"), "provider.type is docker, not vagrant"},
		{filepath.Join(t.TempDir(), "missing.yaml"), "missing.yaml: no such lab file (set LAB_FILE)"},
	} {
		t.Run(filepath.Base(tc.file), func(t *testing.T) {
			out, err := runVagrantValidate(t, vagrant, tc.file)
			if err == nil {
				t.Fatalf("vagrant validate accepted %s:\n%s", tc.file, out)
			}
			if !strings.Contains(out, "Vagrantfile: ") || !strings.Contains(out, tc.want) {
				t.Fatalf("vagrant validate with %s: want a line with %q, got:\n%s", tc.file, tc.want, out)
			}
			if strings.Contains(out, ".rb:") {
				t.Errorf("the refusal shows a Ruby backtrace:\n%s", out)
			}
		})
	}
}

// machine is what the Vagrantfile asks of Vagrant for one VM.
type machine struct {
	Name, Box, BoxVersion, Hostname string
	VBoxName, Group                 string
	CPUs, Memory                    int
	LinkedClone                     bool
	NICs                            []nic
	Customize                       [][]string // modifyvm arguments after :id
}

type nic struct{ Type, IP, Netmask string }

// event is one setting or call recorded by testdata/record.rb.
type event struct {
	Path string         `json:"path"`
	Args []any          `json:"args"`
	KW   map[string]any `json:"kw"`
}

var definePath = regexp.MustCompile(`^vm\.define\[([^\]]*)\]\.(.*)$`)

// record loads the Vagrantfile under testdata/record.rb and returns the
// global events and the machines in definition order.
func record(t *testing.T, ruby, labFile string) ([]event, []*machine) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, ruby, "testdata/record.rb", vagrantfile)
	cmd.Env = vagrantEnv(t, labFile)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("record %s: %v\n%s", labFile, err, stderr.String())
	}
	var events []event
	if err := json.Unmarshal(out, &events); err != nil {
		t.Fatalf("record %s: %v\n%s", labFile, err, out)
	}
	var global []event
	var machines []*machine
	byName := map[string]*machine{}
	for _, e := range events {
		m := definePath.FindStringSubmatch(e.Path)
		if m == nil {
			global = append(global, e)
			continue
		}
		vm := byName[m[1]]
		if vm == nil {
			vm = &machine{Name: m[1]}
			byName[m[1]] = vm
			machines = append(machines, vm)
		}
		if err := vm.apply(m[2], e); err != nil {
			t.Fatalf("%s: machine %s: %v", labFile, vm.Name, err)
		}
	}
	return global, machines
}

func (vm *machine) apply(path string, e event) error {
	arg := func() any {
		if len(e.Args) != 1 {
			return nil
		}
		return e.Args[0]
	}
	str := func() string { s, _ := arg().(string); return s }
	num := func() int { f, _ := arg().(float64); return int(f) }
	switch path {
	case "vm.box":
		vm.Box = str()
	case "vm.box_version":
		vm.BoxVersion = str()
	case "vm.hostname":
		vm.Hostname = str()
	case "vm.network":
		ip, _ := e.KW["ip"].(string)
		mask, _ := e.KW["netmask"].(string)
		vm.NICs = append(vm.NICs, nic{Type: str(), IP: ip, Netmask: mask})
	case "vm.provider[virtualbox].name":
		vm.VBoxName = str()
	case "vm.provider[virtualbox].cpus":
		vm.CPUs = num()
	case "vm.provider[virtualbox].memory":
		vm.Memory = num()
	case "vm.provider[virtualbox].linked_clone":
		vm.LinkedClone, _ = arg().(bool)
	case "vm.provider[virtualbox].check_guest_additions":
	case "vm.provider[virtualbox].customize":
		list, _ := arg().([]any)
		if len(list) < 2 || list[0] != "modifyvm" || list[1] != "id" {
			return fmt.Errorf("customize %v: want modifyvm :id ...", e.Args)
		}
		var rest []string
		for _, a := range list[2:] {
			rest = append(rest, fmt.Sprint(a))
		}
		if len(rest) == 2 && rest[0] == "--groups" {
			vm.Group = rest[1]
			return nil
		}
		vm.Customize = append(vm.Customize, rest)
	default:
		return fmt.Errorf("unexpected setting %s %v %v", path, e.Args, e.KW)
	}
	return nil
}

// want is the machine provision/labfile says node n must be.
func want(lab *labfile.Lab, n *labfile.Node) *machine {
	v := lab.Provider.Vagrant
	m := &machine{
		Name: n.Name, Box: v.Box, BoxVersion: v.BoxVersion, Hostname: n.Name,
		VBoxName: lab.Metadata.Name + "-" + n.Name, Group: v.Group,
		CPUs: n.CPUs, Memory: n.Memory, LinkedClone: *v.LinkedClone,
		Customize: [][]string{{"--nestedpaging", "on"}},
	}
	// The node network is the first host-only NIC, the others follow in
	// the order of the lab's networks.
	nets := []*labfile.Network{lab.NodeNetworkDef()}
	for i := range lab.Networks {
		if lab.Networks[i].Name != lab.Kubernetes.NodeNetwork {
			nets = append(nets, &lab.Networks[i])
		}
	}
	for _, nw := range nets {
		addr, ok := n.Addresses[nw.Name]
		if !ok {
			continue
		}
		mask := net.IP(net.CIDRMask(nw.Prefix().Bits(), 32)).String()
		m.NICs = append(m.NICs, nic{Type: "private_network", IP: addr, Netmask: mask})
		// NIC 1 is NAT; host-only NICs are 2, 3, ...
		m.Customize = append(m.Customize, []string{fmt.Sprintf("--nicpromisc%d", len(m.NICs)+1), "allow-all"})
	}
	return m
}

// TestVagrantfileMatchesLabfile proves that the Vagrantfile and
// provision/labfile agree: same machines in the same order, with the
// defaults of defaults.go, NICs on the lab networks (node network first,
// promiscuous), no synced folder and no provisioner.
func TestVagrantfileMatchesLabfile(t *testing.T) {
	ruby := needTool(t, "ruby")
	for file, lab := range vagrantLabs(t, "testdata/routed.yaml") {
		t.Run(filepath.Base(file), func(t *testing.T) {
			global, machines := record(t, ruby, file)

			wantGlobal := []event{{Path: "vm.synced_folder", Args: []any{".", "/vagrant"}, KW: map[string]any{"disabled": true}}}
			if !reflect.DeepEqual(global, wantGlobal) {
				t.Errorf("settings outside the machines:\n got %+v\nwant %+v", global, wantGlobal)
			}
			if len(machines) != len(lab.Nodes) {
				t.Fatalf("%d machines, want one per node (%d)", len(machines), len(lab.Nodes))
			}
			for i := range lab.Nodes {
				w := want(lab, &lab.Nodes[i])
				if !reflect.DeepEqual(machines[i], w) {
					t.Errorf("machine %d:\n got %+v\nwant %+v", i, *machines[i], *w)
				}
			}
		})
	}
}

// TestRoutedDefaults pins the values the routed test lab must produce, so a
// change of defaults.go that the Vagrantfile misses cannot pass unnoticed
// by moving both sides of TestVagrantfileMatchesLabfile.
func TestRoutedDefaults(t *testing.T) {
	ruby := needTool(t, "ruby")
	_, machines := record(t, ruby, "testdata/routed.yaml")
	if len(machines) != 3 {
		t.Fatalf("%d machines, want 3", len(machines))
	}
	ctr, router, client := machines[0], machines[1], machines[2]
	if ctr.Box != labfile.DefaultVagrantBox || ctr.CPUs != labfile.DefaultVagrantCPUs || ctr.Memory != labfile.DefaultVagrantMemory {
		t.Errorf("k8s-ctr: box %q, %d CPUs, %d MiB; want the defaults", ctr.Box, ctr.CPUs, ctr.Memory)
	}
	if ctr.BoxVersion != "202502.21.0" || ctr.LinkedClone || ctr.Group != "" {
		t.Errorf("k8s-ctr: box version %q, linked clone %v, group %q", ctr.BoxVersion, ctr.LinkedClone, ctr.Group)
	}
	wantNICs := []nic{
		{"private_network", "192.168.56.200", "255.255.252.0"},
		{"private_network", "192.168.20.200", "255.255.255.0"},
	}
	if !reflect.DeepEqual(router.NICs, wantNICs) || router.CPUs != 1 || router.Memory != 768 {
		t.Errorf("router: NICs %v, %d CPUs, %d MiB", router.NICs, router.CPUs, router.Memory)
	}
	if len(client.NICs) != 1 || client.NICs[0].IP != "192.168.20.50" || client.Memory != labfile.DefaultVagrantMemory {
		t.Errorf("client: NICs %v, %d MiB", client.NICs, client.Memory)
	}
}
