package phases

import (
	"context"
	"io/fs"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/labctl/lab/provision/artifacts"
	"github.com/labctl/lab/provision/labfile"
	"github.com/labctl/lab/provision/workflow"
	"github.com/labctl/lab/templates"
)

// readOnlyNode is a node that fails the test when a Done check writes:
// an upload, or a command that changes something.
type readOnlyNode struct {
	t      *testing.T
	name   string
	answer func(cmd string) (string, error)
	ran    int
}

// writes matches what a read-only command has no business doing: a
// redirection into a file other than /dev/null, moving, removing or
// creating files, changing services or the cluster.
var writes = regexp.MustCompile(`(^|[^0-9&>])>>?\s*[^&\s/]|(^|[^0-9&>])>>?\s*/[^d\s]|\b(mv|rm|mkdir|tee|chmod|chown|install|ln|sed -i|modprobe|swapoff|hostnamectl|sysctl -p|systemctl (start|restart|enable|reload|daemon-reload)|kubectl [^|;]*\b(apply|create|delete|patch|label)|kubeadm (init|join|reset|token create|upgrade)|helm (upgrade|install)|ctr [^|;]*import)\b`)

func (n *readOnlyNode) Run(_ context.Context, cmd string) (string, error) {
	n.ran++
	// Here-documents carry data, not commands.
	body, _, _ := strings.Cut(cmd, "<<'EOF'")
	if m := writes.FindString(body); m != "" {
		n.t.Errorf("%s: a Done check ran a command that writes (%q):\n%s", n.name, m, cmd)
	}
	return n.answer(cmd)
}

func (n *readOnlyNode) Upload(_ context.Context, files []templates.File) (int, error) {
	n.t.Errorf("%s: a Done check uploaded %d files", n.name, len(files))
	return 0, nil
}

type readOnlyDialer map[string]*readOnlyNode

func (d readOnlyDialer) Dial(_ context.Context, node string) (Conn, error) { return d[node], nil }

// TestDoneChecksOnlyRead runs the Done check of every phase of lab up on
// every node it visits, with nodes that answer "all is well" and nodes
// whose every command fails, and fails on any upload or command that
// would change a node: Done is read-only by contract (lab up --dry-run
// runs it), and none may gather Cilium's set, which may mean building it.
func TestDoneChecksOnlyRead(t *testing.T) {
	labs := map[string]func(t *testing.T) (*Run, fakeDialer){
		"builtin": newTestRun,
		"cilium": func(t *testing.T) (*Run, fakeDialer) {
			c, d := newCiliumRun(t, labfile.ArtifactsBuild)
			c.Sources.Cilium = func(context.Context, string, string) (*artifacts.CiliumSet, error) {
				t.Error("a Done check asked for the Cilium set, which may build it")
				return nil, errFake
			}
			return c, d
		},
		// A router, a worker behind it, BGP and add-ons: the
		// network, pod-routes, bgp, addon-images and addons phases'
		// checks.
		"study-5w": func(t *testing.T) (*Run, fakeDialer) {
			l, _, err := labfile.LoadWith("../../labs/cilium-study/5w.yaml", labfile.Overrides{Provider: labfile.ProviderDocker})
			if err != nil {
				t.Fatal(err)
			}
			return newRunFor(t, l)
		},
	}
	for name, answer := range map[string]func(string) (string, error){
		"commands succeed": func(string) (string, error) { return "", nil },
		"commands fail":    func(string) (string, error) { return "", errFake },
	} {
		for labName, newRun := range labs {
			t.Run(labName+"/"+name, func(t *testing.T) {
				testDoneChecksOnlyRead(t, newRun, answer)
			})
		}
	}
}

// testDoneChecksOnlyRead is TestDoneChecksOnlyRead for one lab and one
// way of answering.
func testDoneChecksOnlyRead(t *testing.T, newRun func(t *testing.T) (*Run, fakeDialer), answer func(string) (string, error)) {
	c, fakes := newRun(t)
	d := readOnlyDialer{}
	for n := range fakes {
		d[n] = &readOnlyNode{t: t, name: n, answer: answer}
	}
	c.Dialer = d
	checked := 0
	for _, p := range []workflow.Phase{
		c.Connect(), c.GatherFacts(), c.PrepareOS(), c.Network(), c.Packages(), c.LoadBalancer(), c.Kubernetes(),
		c.Init(), c.JoinControlPlanes(), c.JoinWorkers(), c.Preflight(), c.CNIImages(), c.CNI(),
		c.PodRoutes(0), c.BGP(), c.AddonImages(), c.Addons(),
	} {
		if p.Done == nil || p.Nodes == nil {
			continue
		}
		for _, n := range p.Nodes() {
			checked++
			if _, err := p.Done(t.Context(), n); err != nil && !strings.Contains(err.Error(), "exit status") {
				t.Logf("%s on %s: %v", p.Name, n, err)
			}
		}
	}
	ran := 0
	for _, n := range d {
		ran += n.ran
	}
	if checked == 0 || ran == 0 {
		t.Fatalf("%d checks ran %d commands: the test checks nothing", checked, ran)
	}
}

// TestWritesPattern: the pattern above tells writing commands from reading
// ones, or the test above proves nothing.
func TestWritesPattern(t *testing.T) {
	for cmd, want := range map[string]bool{
		"cat /etc/hosts":                           false,
		"kubeadm version 2>/dev/null":              false,
		"sed -n '/a/p' /etc/hosts >/dev/null 2>&1": false,
		"echo x > /etc/hosts":                      true,
		"echo x >/etc/hosts":                       true,
		"echo x > out":                             true,
		"mv a b":                                   true,
		"systemctl restart haproxy":                true,
		"kubectl --kubeconfig x apply -f -":        true,
		"kubectl --kubeconfig x diff -f -":         false,
		"kubeadm token create abc":                 true,
		"kubeadm token list":                       false,
	} {
		if got := writes.MatchString(cmd); got != want {
			t.Errorf("%q: writes = %v, want %v", cmd, got, want)
		}
	}
}

// TestKubernetesDoneNeverGathers: with artifacts gathered on this machine
// (build), the kubernetes phase's Done check looks in the cache and, when
// the Set is not there, says "not done" at once; building is Run's work.
func TestKubernetesDoneNeverGathers(t *testing.T) {
	c, _ := newTestRun(t)
	c.Lab.Kubernetes.Artifacts = labfile.ArtifactsBuild
	c.Sources.CacheDir = t.TempDir()
	p := c.Kubernetes()
	done, err := p.Done(t.Context(), "cp1")
	if err != nil || done {
		t.Fatalf("Done = %v, %v; want false, nil", done, err)
	}
	var made []string
	_ = filepath.WalkDir(c.Sources.CacheDir, func(path string, d fs.DirEntry, err error) error {
		if path != c.Sources.CacheDir {
			made = append(made, path)
		}
		return nil
	})
	if len(made) > 0 {
		t.Errorf("the Done check wrote into the artifact cache: %v", made)
	}
}
