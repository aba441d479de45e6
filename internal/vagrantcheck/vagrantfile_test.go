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
	"sync"
	"testing"
	"time"

	"github.com/labctl/lab/internal/tooltest"
	"github.com/labctl/lab/provision/labfile"
	"github.com/labctl/lab/provision/provider/vagrant"
)

// topVagrantfile is the repository's copy of the Vagrantfile, the one run by
// hand; provision/provider/vagrant checks that it equals the embedded one.
const (
	topVagrantfile = "../../Vagrantfile"
	labsDir        = "../../labs"
)

// tmp holds what TestMain makes for the tests: the lab binary.
var tmp string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vagrantcheck")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tmp = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildLab builds cmd/lab once, for the Vagrantfile run by hand, which asks
// `lab vagrant-vms` for the VM list.
var buildLab = sync.OnceValues(func() (string, error) {
	bin := filepath.Join(tmp, "bin", "lab")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/labctl/lab/cmd/lab").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ./cmd/lab: %v\n%s", err, out)
	}
	return bin, nil
})

func labBinary(t *testing.T) string {
	t.Helper()
	bin, err := buildLab()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

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
	weeks, err := filepath.Glob(filepath.Join(labsDir, "*", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, weeks...)
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

// setup is how the Vagrantfile gets its VM list: the directory holding the
// Vagrantfile to load, the environment to load it with, and where vagrant
// runs.
type setup struct {
	dir, cwd string
	env      []string
}

// vagrantEnv is the environment for a vagrant run that touches nothing of
// the user's: its own VAGRANT_HOME, no network check for new versions, and
// no LAB_FILE, LAB_BIN or other VAGRANT_* variable but the test's own.
func vagrantEnv(t *testing.T, extra ...string) []string {
	t.Helper()
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LAB_FILE=") && !strings.HasPrefix(kv, "LAB_BIN=") && !strings.HasPrefix(kv, "VAGRANT_") {
			env = append(env, kv)
		}
	}
	return append(append(env,
		"VAGRANT_HOME="+t.TempDir(),
		"VAGRANT_CHECKPOINT_DISABLE=1",
		"VAGRANT_NO_COLOR=1",
	), extra...)
}

// asLabUp sets the Vagrantfile up as `lab up` does: the embedded Vagrantfile
// and the lab's VM list written into one directory by the provider, and
// vagrant pointed at it from an unrelated directory.
func asLabUp(t *testing.T, lab *labfile.Lab) setup {
	t.Helper()
	dir := t.TempDir()
	if err := vagrant.Prepare(dir, lab, nil); err != nil {
		t.Fatal(err)
	}
	env := vagrantEnv(t, "VAGRANT_CWD="+dir, "VAGRANT_VAGRANTFILE=Vagrantfile", "VAGRANT_DOTFILE_PATH="+filepath.Join(dir, "vagrant"))
	return setup{dir: dir, cwd: t.TempDir(), env: env}
}

// byHand sets the repository's Vagrantfile up as a person runs it:
// LAB_FILE=labFile vagrant ..., with the lab binary as LAB_BIN. The
// Vagrantfile is copied to a temporary directory, so no .vagrant/ lands in
// the repository.
func byHand(t *testing.T, labFile string, env ...string) setup {
	t.Helper()
	abs, err := filepath.Abs(labFile)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	src, err := os.ReadFile(topVagrantfile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Vagrantfile"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	if env == nil {
		env = []string{"LAB_BIN=" + labBinary(t)}
	}
	return setup{dir: dir, cwd: dir, env: vagrantEnv(t, append(env, "LAB_FILE="+abs)...)}
}

// runVagrantValidate runs `vagrant validate --ignore-provider` on the
// Vagrantfile of s and returns its combined output.
func runVagrantValidate(t *testing.T, bin string, s setup) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "validate", "--ignore-provider")
	cmd.Dir = s.cwd
	cmd.Env = s.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestVagrantValidate has the real vagrant load the Vagrantfile for every
// vagrant lab, fed as `lab up` feeds it and as it is run by hand, and check
// its core settings.
func TestVagrantValidate(t *testing.T) {
	bin := needTool(t, "vagrant")
	for file, lab := range vagrantLabs(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			for mode, s := range map[string]setup{"lab up": asLabUp(t, lab), "by hand": byHand(t, file)} {
				out, err := runVagrantValidate(t, bin, s)
				if err != nil || !strings.Contains(out, "Vagrantfile validated successfully.") {
					t.Fatalf("vagrant validate %s with %s: %v\n%s", mode, file, err, out)
				}
			}
		})
	}
}

// pathWithoutLab is $PATH without the directories that hold a lab command.
func pathWithoutLab() string {
	var dirs []string
	for _, d := range filepath.SplitList(os.Getenv("PATH")) {
		if _, err := os.Stat(filepath.Join(d, "lab")); err != nil {
			dirs = append(dirs, d)
		}
	}
	return strings.Join(dirs, string(os.PathListSeparator))
}

// TestVagrantRefuses proves that vagrant stops with one clear line for a
// lab that is not a vagrant lab, a lab file that does not exist, a missing
// lab command, and a VM list it cannot read.
func TestVagrantRefuses(t *testing.T) {
	bin := needTool(t, "vagrant")
	study, _, err := labfile.Load(filepath.Join(labsDir, "cilium-study.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// list is the study lab as `lab up` hands it over, with edit applied.
	list := func(edit string) setup {
		s := asLabUp(t, study)
		js, err := os.ReadFile(filepath.Join(s.dir, vagrant.VMListFile))
		if err != nil {
			t.Fatal(err)
		}
		old, new, _ := strings.Cut(edit, "=>")
		if !bytes.Contains(js, []byte(old)) {
			t.Fatalf("the VM list has no %q:\n%s", old, js)
		}
		js = bytes.Replace(js, []byte(old), []byte(new), 1)
		if err := os.WriteFile(filepath.Join(s.dir, vagrant.VMListFile), js, 0o600); err != nil {
			t.Fatal(err)
		}
		return s
	}
	studyFile := filepath.Join(labsDir, "cilium-study.yaml")
	for _, tc := range []struct {
		name, want string
		setup      func() setup
	}{
		{"docker lab", "provider.type is docker, not vagrant", func() setup { return byHand(t, filepath.Join(labsDir, "ci.yaml")) }},
		{"missing lab file", "missing.yaml: no such lab file (set LAB_FILE)", func() setup { return byHand(t, filepath.Join(t.TempDir(), "missing.yaml")) }},
		{"no lab command", "no lab command on PATH to read LAB_FILE with", func() setup { return byHand(t, studyFile, "PATH="+pathWithoutLab()) }},
		{"LAB_BIN not a program", "is not an executable file", func() setup { return byHand(t, studyFile, "LAB_BIN="+t.TempDir()) }},
		{"other format", "VM list format 2, this Vagrantfile reads 1", func() setup { return list(`"format": 1=>"format": 2`) }},
		{"other provider", `provider "libvirt": this Vagrantfile configures only virtualbox`, func() setup { return list(`"provider": "virtualbox"=>"provider": "libvirt"`) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runVagrantValidate(t, bin, tc.setup())
			if err == nil {
				t.Fatalf("vagrant validate went through:\n%s", out)
			}
			if !strings.Contains(out, "Vagrantfile: ") || !strings.Contains(out, tc.want) {
				t.Fatalf("want a line with %q, got:\n%s", tc.want, out)
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

// record loads the Vagrantfile of s under testdata/record.rb and returns
// the global events and the machines in definition order.
func record(t *testing.T, ruby string, s setup) ([]event, []*machine) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, ruby, "testdata/record.rb", filepath.Join(s.dir, "Vagrantfile"))
	cmd.Env = s.env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("record %s: %v\n%s", s.dir, err, stderr.String())
	}
	var events []event
	if err := json.Unmarshal(out, &events); err != nil {
		t.Fatalf("record %s: %v\n%s", s.dir, err, out)
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
			t.Fatalf("%s: machine %s: %v", s.dir, vm.Name, err)
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

// modes returns the Vagrantfile of lab file set up both ways it runs: as
// `lab up` feeds it and by hand.
func modes(t *testing.T, file string, lab *labfile.Lab) map[string]setup {
	t.Helper()
	return map[string]setup{"lab up": asLabUp(t, lab), "by hand": byHand(t, file)}
}

// TestVagrantfileMatchesLabfile proves that what the Vagrantfile asks of
// Vagrant is what provision/labfile loads: same machines in the same order,
// with the defaults of defaults.go, NICs on the lab networks (node network
// first, promiscuous), no synced folder and no provisioner.
func TestVagrantfileMatchesLabfile(t *testing.T) {
	ruby := needTool(t, "ruby")
	for file, lab := range vagrantLabs(t, "testdata/routed.yaml") {
		for mode, s := range modes(t, file, lab) {
			t.Run(filepath.Base(file)+"/"+mode, func(t *testing.T) {
				global, machines := record(t, ruby, s)

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
}

// TestRoutedDefaults pins the values the routed test lab must produce, so a
// change of defaults.go that the VM list misses cannot pass unnoticed by
// moving both sides of TestVagrantfileMatchesLabfile.
func TestRoutedDefaults(t *testing.T) {
	ruby := needTool(t, "ruby")
	const file = "testdata/routed.yaml"
	lab, _, err := labfile.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	for mode, s := range modes(t, file, lab) {
		t.Run(mode, func(t *testing.T) {
			_, machines := record(t, ruby, s)
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
		})
	}
}
