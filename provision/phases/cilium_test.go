package phases

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/labctl/lab/provision/artifacts"
	"github.com/labctl/lab/provision/labfile"
	"github.com/labctl/lab/provision/state"
	"github.com/labctl/lab/provision/workflow"
	"github.com/labctl/lab/templates"
)

const ciliumVersion = "1.18.1"

// newCiliumRun is newTestRun's lab with Cilium and the given artifact
// source.
func newCiliumRun(t *testing.T, source string) (*Run, fakeDialer) {
	t.Helper()
	src := strings.Replace(haLab, "controlPlane:", "kubernetes: {artifacts: "+source+", kubeProxy: false}\ncni: {type: cilium, cilium: {version: "+ciliumVersion+"}}\ncontrolPlane:", 1)
	l, _, err := labfile.Parse("cilium.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	dir, err := state.Open(t.TempDir(), "t")
	if err != nil {
		t.Fatal(err)
	}
	d := fakeDialer{}
	for _, n := range l.Nodes {
		d[n.Name] = &fakeNode{uploads: map[string]templates.File{}}
	}
	c := NewRun(l, dir, d, nil)
	for _, n := range l.Nodes {
		c.setFacts(n.Name, &Facts{OS: "debian", Arch: "x86_64", Interface: "eth0", Hostname: n.Name})
	}
	return c, d
}

// fakeCiliumSet writes a set's blobs where CiliumSet.Path finds them for a
// set read from no cache (relative to the working directory, which the
// test moves to a temporary one) and returns the set: the three images an
// offline lab's values name, and a chart.
func fakeCiliumSet(t *testing.T) *artifacts.CiliumSet {
	t.Helper()
	t.Chdir(t.TempDir())
	blob := func(content string) artifacts.Blob {
		sum := sha256.Sum256([]byte(content))
		d := "sha256:" + hex.EncodeToString(sum[:])
		s := &artifacts.CiliumSet{}
		p := s.Path(d)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return artifacts.Blob{Digest: d, Size: int64(len(content))}
	}
	refs := artifacts.CiliumImageRefs(ciliumVersion)
	s := &artifacts.CiliumSet{Version: ciliumVersion, Arch: "amd64", Source: "build", Key: "k1", Chart: blob("chart tgz")}
	for i, ref := range []string{refs.Agent, refs.Operator, refs.Relay} {
		b := blob("image " + ref)
		s.Images = append(s.Images, artifacts.Image{Ref: ref, Digest: b.Digest, Size: b.Size, ID: "sha256:" + strings.Repeat(string(rune('a'+i)), 64)})
	}
	return s
}

// containerd is what a fake node's containerd holds, by reference.
type containerd struct {
	mu     sync.Mutex
	images map[string]string
	// imported is what an import adds.
	imported []artifacts.Image
	log      *[]string // shared by every node: "node: what", in order
	node     string
}

func (c *containerd) answer(cmd string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case strings.Contains(cmd, "ctr -n k8s.io images import"):
		for _, im := range c.imported {
			c.images[im.Ref] = im.ID
		}
		*c.log = append(*c.log, c.node+": import")
	case strings.Contains(cmd, "ctr -n k8s.io images ls"):
		var b strings.Builder
		for ref, id := range c.images {
			if strings.Contains(cmd, "'"+ref+"'") {
				b.WriteString(ref + " " + id + "\n")
			}
		}
		return b.String(), nil
	case strings.Contains(cmd, "helm upgrade --install"):
		*c.log = append(*c.log, c.node+": helm")
	}
	return "", nil
}

// TestCiliumOfflineInstall runs cni-images and cni through the engine on
// a build lab with a fake set: every Kubernetes node imports the three
// images before helm runs once, on the first control plane, from the
// chart lab sent (mode 0644, under /etc/lab/cilium), never from a
// repository; the set is gathered once.
func TestCiliumOfflineInstall(t *testing.T) {
	c, d := newCiliumRun(t, labfile.ArtifactsBuild)
	set := fakeCiliumSet(t)
	calls := 0
	c.Sources.Cilium = func(_ context.Context, version, arch string) (*artifacts.CiliumSet, error) {
		calls++
		if version != ciliumVersion || arch != "amd64" {
			t.Errorf("source asked for %s %s", version, arch)
		}
		return set, nil
	}
	var log []string
	for name, n := range d {
		cd := &containerd{images: map[string]string{}, imported: set.Images, log: &log, node: name}
		n.answer = cd.answer
	}
	eng := &workflow.Engine{}
	if err := eng.Run(t.Context(), withFacts(c.CNIImages(), c.CNI())); err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Errorf("the source was asked %d times, want once", calls)
	}
	if len(log) != 5 || log[4] != "cp1: helm" {
		t.Fatalf("want an import on each of the 4 nodes, then helm on cp1; got %v", log)
	}
	for name, n := range d {
		stamp, ok := n.uploads[ciliumImagesStamp]
		if !ok {
			t.Errorf("%s: no stamp of the imported images", name)
			continue
		}
		for _, im := range set.Images {
			if !strings.Contains(string(stamp.Content), im.Ref+" "+im.ID+"\n") {
				t.Errorf("%s: the stamp lacks %s:\n%s", name, im.Ref, stamp.Content)
			}
		}
		tars := 0
		for p := range n.uploads {
			if strings.HasPrefix(p, imagesDir+"/") {
				tars++
			}
		}
		if tars != 3 {
			t.Errorf("%s: %d image tarballs sent, want 3", name, tars)
		}
	}
	cp1 := d["cp1"]
	chart, ok := cp1.uploads[ciliumChartPath(ciliumVersion)]
	if !ok || string(chart.Content) != "chart tgz" || chart.Mode != 0o644 {
		t.Errorf("chart on cp1: %v, %q, %o; want the set's chart, 0644", ok, chart.Content, chart.Mode)
	}
	if !strings.HasPrefix(ciliumChartPath(ciliumVersion), "/etc/lab/cilium/") {
		t.Errorf("chart path %s is not under /etc/lab/cilium, which reset removes", ciliumChartPath(ciliumVersion))
	}
	if v, ok := cp1.uploads[templates.CiliumValuesPath]; !ok || !strings.Contains(string(v.Content), "override: lab.local/cilium/cilium:v"+ciliumVersion) {
		t.Errorf("values on cp1 do not name the built agent image:\n%s", v.Content)
	}
	var helm string
	for _, cmd := range cp1.cmds {
		if strings.Contains(cmd, "helm upgrade --install") {
			helm = cmd
		}
	}
	if !strings.Contains(helm, "'"+ciliumChartPath(ciliumVersion)+"'") || strings.Contains(helm, "--repo") || strings.Contains(helm, "helm.cilium.io") {
		t.Errorf("helm does not install from the chart file alone:\n%s", helm)
	}
	if _, ok := d["cp2"].uploads[ciliumChartPath(ciliumVersion)]; ok {
		t.Error("the chart went to cp2 too; only the first control plane runs helm")
	}
}

// TestCiliumWithoutSource: a lab whose artifacts are not built here, with
// no Cilium source, fails with what to do; a source that fails, or returns
// nothing, fails naming the version; a set that lacks an image the values
// name, or is another version, never reaches a node.
func TestCiliumWithoutSource(t *testing.T) {
	// Labs whose nodes pull upstream's images take the chart from the
	// module (artifacts.CiliumChart, tested there), never a repository.
	c, _ := newCiliumRun(t, labfile.ArtifactsPackages)
	if d := strings.Join(c.CNIImages().Describe("cp1"), "\n"); !strings.Contains(d, "github.com/cilium/cilium module") {
		t.Errorf("packages lab: %s", d)
	}

	set := fakeCiliumSet(t)
	for name, tc := range map[string]struct {
		source CiliumSource
		want   string
	}{
		"fails": {func(context.Context, string, string) (*artifacts.CiliumSet, error) {
			return nil, errors.New("no Go toolchain")
		}, "Cilium 1.18.1 for amd64: no Go toolchain"},
		"returns nothing": {func(context.Context, string, string) (*artifacts.CiliumSet, error) {
			return nil, nil
		}, "returned no set"},
		"lacks an image": {func(context.Context, string, string) (*artifacts.CiliumSet, error) {
			s := *set
			s.Images = s.Images[:2]
			return &s, nil
		}, "lacks image lab.local/cilium/hubble-relay:v1.18.1"},
		"another version": {func(context.Context, string, string) (*artifacts.CiliumSet, error) {
			s := *set
			s.Version = "1.17.6"
			return &s, nil
		}, "is Cilium 1.17.6, the lab asks for 1.18.1"},
		"no chart": {func(context.Context, string, string) (*artifacts.CiliumSet, error) {
			s := *set
			s.Chart = artifacts.Blob{Digest: "sha256:" + strings.Repeat("0", 64)}
			return &s, nil
		}, "its chart"},
	} {
		t.Run(name, func(t *testing.T) {
			c, d := newCiliumRun(t, labfile.ArtifactsBuild)
			c.Sources.Cilium = tc.source
			err := c.CNIImages().Run(t.Context(), "w1")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one saying %q", err, tc.want)
			}
			if n := d["w1"].uploaded; n != 0 {
				t.Errorf("%d files reached the node", n)
			}
		})
	}
}

// TestCiliumDone: the cni-images check compares containerd with the
// stamp the phase left, and the cni check wants the chart on the node and
// release cilium deployed from that version's chart; neither gathers the
// set.
func TestCiliumDone(t *testing.T) {
	c, d := newCiliumRun(t, labfile.ArtifactsBuild)
	c.Sources.Cilium = func(context.Context, string, string) (*artifacts.CiliumSet, error) {
		t.Error("a Done check asked the Cilium source")
		return nil, errors.New("no")
	}
	refs := artifacts.CiliumImageRefs(ciliumVersion)
	stamp := "# set k1\n" + refs.Agent + " sha256:aa\n" + refs.Operator + " sha256:bb\n"
	for name, tc := range map[string]struct {
		stamp  string
		images map[string]string
		want   bool
	}{
		"imported":      {stamp, map[string]string{refs.Agent: "sha256:aa", refs.Operator: "sha256:bb"}, true},
		"no stamp":      {"", map[string]string{refs.Agent: "sha256:aa", refs.Operator: "sha256:bb"}, false},
		"replaced":      {stamp, map[string]string{refs.Agent: "sha256:aa", refs.Operator: "sha256:cc"}, false},
		"removed":       {stamp, map[string]string{refs.Agent: "sha256:aa"}, false},
		"set of none":   {"# set k2\n", map[string]string{}, true},
		"garbled stamp": {"# set k1\nnonsense\n", map[string]string{}, false},
	} {
		t.Run(name, func(t *testing.T) {
			var log []string
			cd := &containerd{images: tc.images, log: &log}
			d["w1"].answer = func(cmd string) (string, error) {
				if strings.HasPrefix(cmd, "cat "+ciliumImagesStamp) {
					return tc.stamp, nil
				}
				return cd.answer(cmd)
			}
			done, err := c.CNIImages().Done(t.Context(), "w1")
			if err != nil || done != tc.want {
				t.Errorf("Done = %v, %v; want %v", done, err, tc.want)
			}
		})
	}

	deployed := `[{"name":"cilium","namespace":"kube-system","revision":"2","status":"deployed","chart":"cilium-` + ciliumVersion + `","app_version":"` + ciliumVersion + `"}]`
	for name, tc := range map[string]struct {
		chart bool
		list  string
		want  bool
	}{
		"deployed":        {true, deployed, true},
		"no chart file":   {false, deployed, false},
		"failed":          {true, strings.Replace(deployed, `"deployed"`, `"failed"`, 1), false},
		"older chart":     {true, strings.ReplaceAll(deployed, ciliumVersion, "1.17.6"), false},
		"not installed":   {true, "[]", false},
		"helm unreadable": {true, "Error: kubernetes cluster unreachable", false},
	} {
		t.Run(name, func(t *testing.T) {
			d["cp1"].answer = func(cmd string) (string, error) {
				switch {
				case strings.Contains(cmd, "test -s"):
					if !tc.chart {
						return "", errFake
					}
				case strings.Contains(cmd, "helm list"):
					return tc.list, nil
				}
				return "", nil
			}
			// The values file matches: answer file_sums.sh with it.
			files, err := c.ciliumFiles(t.Context(), "cp1")
			if err != nil {
				t.Fatal(err)
			}
			prev := d["cp1"].answer
			d["cp1"].answer = func(cmd string) (string, error) {
				if strings.Contains(cmd, templates.CiliumValuesPath) && !strings.Contains(cmd, "helm") {
					return templates.CiliumValuesPath + " " + sha256Hex(files[0].Content) + " 600\n", nil
				}
				return prev(cmd)
			}
			done, err := c.CNI().Done(t.Context(), "cp1")
			if err != nil || done != tc.want {
				t.Errorf("Done = %v, %v; want %v", done, err, tc.want)
			}
		})
	}
}

// TestCNINeedsImages: selecting the cni phase alone imports the images
// first, and skipping the images while keeping cni is refused.
func TestCNINeedsImages(t *testing.T) {
	c, _ := newCiliumRun(t, labfile.ArtifactsBuild)
	phases := withFacts(c.CNIImages(), c.CNI())
	if err := (&workflow.Engine{Only: []string{"cni"}}).Check(phases); err != nil {
		t.Fatal(err)
	}
	err := (&workflow.Engine{Skip: []string{CNIImagesPhase}}).Check(phases)
	if err == nil || !strings.Contains(err.Error(), CNIImagesPhase) {
		t.Errorf("skipping %s and keeping cni: %v", CNIImagesPhase, err)
	}
	builtin, _ := newTestRun(t)
	if nodes := builtin.CNIImages().Nodes(); len(nodes) != 0 {
		t.Errorf("a builtin lab imports Cilium images on %v", nodes)
	}
}

func TestCiliumStamp(t *testing.T) {
	s := &artifacts.CiliumSet{Key: "k9", Images: []artifacts.Image{{Ref: "b", ID: "sha256:2"}, {Ref: "a", ID: "sha256:1"}}}
	got := string(ciliumStamp(s))
	if got != "# set k9\na sha256:1\nb sha256:2\n" {
		t.Errorf("stamp %q", got)
	}
	images, ok := parseImageStamp(got)
	if !ok || len(images) != 2 || images[0].Ref != "a" || images[1].ID != "sha256:2" {
		t.Errorf("parsed %v, %v", images, ok)
	}
	if _, ok := parseImageStamp(""); ok {
		t.Error("no stamp parsed as one")
	}
}

// TestNodeMountsScript runs node_mounts.sh on mountinfo files as Docker
// leaves a node (private, no bpffs), as the entrypoint leaves it, and
// with bpffs mounted but still private.
func TestNodeMountsScript(t *testing.T) {
	dir := t.TempDir()
	const (
		root    = "1406 1318 0:170 / / rw,relatime %s- overlay overlay rw\n"
		sys     = "1411 1406 0:175 / /sys rw,nosuid %s- sysfs sysfs rw\n"
		bpffs   = "1500 1411 0:190 / /sys/fs/bpf rw,nosuid %s- bpf bpffs rw,mode=700\n"
		private = ""
		shared  = "shared:7 "
	)
	for name, tc := range map[string]struct {
		mountinfo string
		want      string
	}{
		"docker":             {fmt.Sprintf(root+sys, private, private), "bpffs shared"},
		"entrypoint":         {fmt.Sprintf(root+sys+bpffs, shared, shared, shared), ""},
		"bpffs, private":     {fmt.Sprintf(root+sys+bpffs, private, private, private), "shared"},
		"shared, no bpffs":   {fmt.Sprintf(root+sys, shared, shared), "bpffs"},
		"bpffs hidden later": {fmt.Sprintf(root+sys+bpffs, shared, shared, shared) + "1600 1411 0:191 / /sys/fs/bpf rw - tmpfs tmpfs rw\n", "bpffs"},
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
		if err := os.WriteFile(p, []byte(tc.mountinfo), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("sh", "-c", script(nodeMountsSh, p)).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, out)
		}
		if got := strings.Join(strings.Fields(string(out)), " "); got != tc.want {
			t.Errorf("%s: lacks %q, want %q", name, got, tc.want)
		}
	}
}

// TestOSPhaseCiliumMounts: on a Cilium lab the os phase gives each node
// what node_mounts.sh says it lacks and its Done check asks it; a builtin
// lab's nodes are not asked.
func TestOSPhaseCiliumMounts(t *testing.T) {
	c, d := newCiliumRun(t, labfile.ArtifactsBuild)
	lacks := "bpffs\nshared\n"
	var fixes []string
	d["w1"].answer = func(cmd string) (string, error) {
		switch {
		case cmd == nodeMountsSh:
			return lacks, nil
		case strings.HasPrefix(cmd, "mount "):
			fixes = append(fixes, cmd)
			lacks = ""
		}
		return "", nil
	}
	if err := c.PrepareOS().Run(t.Context(), "w1"); err != nil {
		t.Fatal(err)
	}
	if len(fixes) != 2 || !strings.Contains(fixes[0], "mount -t bpf") || fixes[1] != "mount --make-rshared /" {
		t.Errorf("fixes %q", fixes)
	}
	lacks = "shared\n"
	d["w1"].answer = func(cmd string) (string, error) {
		if cmd == nodeMountsSh {
			return lacks, nil
		}
		return "", nil
	}
	if err := c.PrepareOS().Run(t.Context(), "w1"); err == nil || !strings.Contains(err.Error(), "still shared") {
		t.Errorf("a mount that does not take: %v", err)
	}

	b, bd := newTestRun(t)
	if err := b.PrepareOS().Run(t.Context(), "w1"); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range bd["w1"].cmds {
		if cmd == nodeMountsSh {
			t.Error("a builtin lab's node was asked about Cilium's mounts")
		}
	}
}

// TestCiliumAgents: every Kubernetes node is listed in lab order, with
// its agent's readiness, restarts and cilium-dbg's answer, a node without
// an agent pod says so, and an agent on a node the lab does not name (or
// on none) is kept.
func TestCiliumAgents(t *testing.T) {
	c, d := newCiliumRun(t, labfile.ArtifactsBuild)
	d["cp1"].answer = func(cmd string) (string, error) {
		if !strings.Contains(cmd, "k8s-app=cilium") || !strings.Contains(cmd, "cilium-dbg status --brief") {
			t.Errorf("unexpected command %s", cmd)
		}
		return "cp2 cilium-x7k2p true 0 OK\n" +
			"cp1 cilium-4bq9z true 3 OK\n" +
			"w1 cilium-zz9c1 false 1 (agent not ready)\n" +
			"gone cilium-old00 true 0 OK\n" +
			"<none> cilium-pend0 <none> <none> (agent not ready)\n", nil
	}
	agents, err := c.CiliumAgents(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := []CiliumAgent{
		{Node: "cp1", Pod: "cilium-4bq9z", Ready: true, Restarts: 3, Status: "OK"},
		{Node: "cp2", Pod: "cilium-x7k2p", Ready: true, Status: "OK"},
		{Node: "cp3", Status: "no Cilium agent pod on this node"},
		{Node: "w1", Pod: "cilium-zz9c1", Restarts: 1, Status: "(agent not ready)"},
		{Node: "gone", Pod: "cilium-old00", Ready: true, Status: "OK"},
		{Pod: "cilium-pend0", Status: "not scheduled"},
	}
	if fmt.Sprint(agents) != fmt.Sprint(want) {
		t.Errorf("agents\n%+v\nwant\n%+v", agents, want)
	}
	if len(d["w1"].cmds) != 0 {
		t.Error("the agents were asked of another node than the first control plane")
	}

	builtin, _ := newTestRun(t)
	if _, err := builtin.CiliumAgents(t.Context()); err == nil {
		t.Error("a builtin lab was asked for Cilium agents")
	}
}
