package nodefiles

import (
	"bytes"
	"flag"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/labctl/lab/internal/golden"
	"github.com/labctl/lab/provision/labfile"
	"github.com/labctl/lab/provision/provider/registry"
	"github.com/labctl/lab/templates"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the current rendering")

func labs(t *testing.T) map[string]*labfile.Lab {
	return golden.Labs(t, "../../labs/*.yaml", "../../labs/*/*.yaml")
}

// testFacts are what `lab render` assumes of a node of l before lab has
// seen it.
func testFacts(l *labfile.Lab) templates.Facts {
	t := registry.Traits(l)
	return templates.Facts{Interface: t.NodeInterface, Container: t.Container()}
}

func render(t *testing.T, l *labfile.Lab, n *labfile.Node) []Group {
	t.Helper()
	groups, err := For(l, n, Placeholders(testFacts(l)))
	if err != nil {
		t.Fatal(err)
	}
	return groups
}

// goldenFiles lists a node's files for the golden tree; each file's phase
// is part of the manifest, so moving a file to another phase shows.
func goldenFiles(groups []Group) []golden.File {
	var out []golden.File
	for _, g := range groups {
		for _, f := range g.Files {
			out = append(out, golden.File{Path: f.Path, Mode: f.Mode, Content: f.Content})
		}
	}
	return out
}

// TestGolden compares every file of every node of every lab in labs/,
// rendered with placeholders, with testdata/golden/<lab>/<node>/<path>.
// `go test ./templates/nodefiles -update` rewrites them.
func TestGolden(t *testing.T) {
	all := labs(t)
	for _, name := range golden.Names(all) {
		l := all[name]
		for i := range l.Nodes {
			n := &l.Nodes[i]
			t.Run(name+"/"+n.Name, func(t *testing.T) {
				golden.Tree(t, filepath.Join("testdata", "golden", name, n.Name), goldenFiles(render(t, l, n)),
					*update, "go test ./templates/nodefiles -update")
			})
		}
	}
}

// TestDeterministic renders every node twice, from two separately loaded
// labs, and expects the same files in the same phases, byte for byte.
func TestDeterministic(t *testing.T) {
	first, second := labs(t), labs(t)
	for name, l := range first {
		for i := range l.Nodes {
			a, b := render(t, l, &l.Nodes[i]), render(t, second[name], &second[name].Nodes[i])
			if len(a) != len(b) {
				t.Fatalf("%s/%s: %d phases, then %d", name, l.Nodes[i].Name, len(a), len(b))
			}
			for j := range a {
				ga, gb := goldenFiles(a[j:j+1]), goldenFiles(b[j:j+1])
				if a[j].Phase != b[j].Phase || !bytes.Equal(golden.Manifest(ga), golden.Manifest(gb)) {
					t.Fatalf("%s/%s: phase %s differs between two renders", name, l.Nodes[i].Name, a[j].Phase)
				}
				for k := range ga {
					if !bytes.Equal(ga[k].Content, gb[k].Content) {
						t.Errorf("%s/%s: %s differs between two renders", name, l.Nodes[i].Name, ga[k].Path)
					}
				}
			}
		}
	}
}

// TestOnePhasePerFile: a path belongs to one phase only, or two phases
// would fight over it on every run.
func TestOnePhasePerFile(t *testing.T) {
	for name, l := range labs(t) {
		for i := range l.Nodes {
			owner := map[string]string{}
			for _, g := range render(t, l, &l.Nodes[i]) {
				for _, f := range g.Files {
					if prev, ok := owner[f.Path]; ok {
						t.Errorf("%s/%s: %s is installed by %s and by %s", name, l.Nodes[i].Name, f.Path, prev, g.Phase)
					}
					owner[f.Path] = g.Phase
				}
			}
		}
	}
}

// TestWhoGetsWhat pins which phase gives which node what.
func TestWhoGetsWhat(t *testing.T) {
	all := labs(t)
	for _, tc := range []struct {
		lab, node string
		want      map[string][]string // phase → paths
	}{
		{"ci", "cp1", map[string][]string{
			OS:           {templates.SysctlPath, templates.ModulesPath, templates.HostsBlockPath},
			Packages:     {templates.ContainerdConfigPath, templates.CrictlConfigPath},
			LoadBalancer: {templates.HAProxyConfigPath, templates.KeepalivedConfigPath, templates.CheckScriptPath},
			Kubernetes:   {templates.KubeletUnitPath, templates.KubeletDropInPath},
			Init:         {"/etc/lab/kubeadm/init.yaml"},
			CNI:          {templates.LabNodeUnitPath, templates.LabNodeConfPath, templates.LabNodeRBACPath},
		}},
		{"ci", "cp2", map[string][]string{
			JoinControlPlane: {"/etc/lab/kubeadm/join.yaml"},
			CNI:              {templates.LabNodeUnitPath, templates.LabNodeConfPath},
		}},
		{"ci", "w1", map[string][]string{
			LoadBalancer: nil,
			JoinWorker:   {"/etc/lab/kubeadm/join.yaml"},
			CNI:          {templates.LabNodeUnitPath, templates.LabNodeConfPath},
		}},
		{"cilium-study", "k8s-ctr", map[string][]string{
			Kubernetes: nil, // packages from pkgs.k8s.io bring their own units
			CNI:        {templates.CiliumValuesPath},
		}},
		{"cilium-study", "k8s-w1", map[string][]string{CNI: nil}},
		{"ha-lb", "lb1", map[string][]string{
			OS:           {templates.SysctlPath, templates.ModulesPath, templates.HostsBlockPath},
			Packages:     nil,
			LoadBalancer: {templates.HAProxyConfigPath, templates.KeepalivedConfigPath, templates.CheckScriptPath},
			Init:         nil,
			CNI:          nil,
		}},
	} {
		l := all[tc.lab]
		if l == nil {
			t.Fatalf("no lab %s in labs/", tc.lab)
		}
		got := map[string][]string{}
		for _, g := range render(t, l, l.Node(tc.node)) {
			for _, f := range g.Files {
				got[g.Phase] = append(got[g.Phase], f.Path)
			}
		}
		for phase, want := range tc.want {
			if strings.Join(slices.Sorted(slices.Values(want)), " ") != strings.Join(got[phase], " ") {
				t.Errorf("%s/%s, phase %s: got %v, want %v", tc.lab, tc.node, phase, got[phase], slices.Sorted(slices.Values(want)))
			}
		}
	}
}

// TestErrorsNameTheNodeOnce: For names the node; ForPhase leaves that to
// the phase engine, so no error says it twice.
func TestErrorsNameTheNodeOnce(t *testing.T) {
	l := labs(t)["ci"]
	n := l.Node("cp1")
	in := Placeholders(templates.Facts{Interface: "eth0 bad"})
	if _, err := ForPhase(l, n, LoadBalancer, in); err == nil || strings.Contains(err.Error(), "cp1") {
		t.Errorf("ForPhase: %v, want an error that does not name the node", err)
	}
	_, err := For(l, n, in)
	if err == nil || strings.Count(err.Error(), "cp1") != 1 || !strings.HasPrefix(err.Error(), "node cp1: ") {
		t.Errorf("For: %v, want an error that names cp1 once", err)
	}
	if _, err := ForPhase(l, n, "ready", in); err == nil || !strings.Contains(err.Error(), "cni") {
		t.Errorf("an unknown phase: %v, want the list of phases that install files", err)
	}
}

// TestPlaceholdersMarked: every credential `lab render` cannot know is a
// marked placeholder on a line of its own.
func TestPlaceholdersMarked(t *testing.T) {
	l := labs(t)["ci"]
	for _, node := range []string{"cp1", "cp2", "w1"} {
		n := 0
		for _, g := range render(t, l, l.Node(node)) {
			for _, f := range g.Files {
				for _, line := range strings.Split(string(f.Content), "\n") {
					if IsPlaceholderLine(line) {
						n++
					}
				}
			}
		}
		if n == 0 {
			t.Errorf("%s: no placeholder lines", node)
		}
	}
}
