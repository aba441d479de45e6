package phases

import (
	"context"
	"encoding/base64"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/labctl/lab/provision/workflow"
	"github.com/labctl/lab/templates"
	"github.com/labctl/lab/templates/nodefiles"
)

// TestPhasesInstallWhatRenderShows runs the Run of every phase that
// installs files, on fake nodes that say yes to everything, and compares
// what each node received with what nodefiles (and so lab render) gives
// that phase for that node: a phase that uploaded a file render does not
// show, or left out one it does, fails here. Programs (lab-node) are not
// rendered and are named apart.
func TestPhasesInstallWhatRenderShows(t *testing.T) {
	const token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJsYWItbm9kZSJ9.c2lnbmF0dXJl"
	ca := testCA(t)
	enc := base64.StdEncoding.EncodeToString
	r, d := newTestRun(t)
	r.Sources.LabNodeDir = t.TempDir()
	if err := os.WriteFile(filepath.Join(r.Sources.LabNodeDir, "lab-node-linux-amd64"), []byte("lab-node"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range d {
		n.answer = func(cmd string) (string, error) {
			switch {
			case cmd == readLabNodeToken:
				return enc([]byte(token)) + " " + enc(ca), nil
			case strings.Contains(cmd, "cat /etc/kubernetes/pki/ca.crt"):
				return string(ca), nil
			}
			return "", nil
		}
	}
	programs := []string{labNodePath}
	phases := []workflow.Phase{r.PrepareOS(), r.Packages(), r.LoadBalancer(), r.Init(), r.JoinControlPlanes(), r.JoinWorkers(), r.CNI()}
	for _, p := range phases {
		if !slices.Contains(nodefiles.Phases(), p.Name) {
			t.Fatalf("phase %s is not one nodefiles knows", p.Name)
		}
		for _, node := range p.Nodes() {
			fake := d[node]
			fake.uploads = map[string]templates.File{}
			if err := p.Run(context.Background(), node); err != nil {
				t.Fatalf("%s on %s: %v", p.Name, node, err)
			}
			var got []string
			for path := range fake.uploads {
				if !slices.Contains(programs, path) {
					got = append(got, unstaged(path))
				}
			}
			sort.Strings(got)
			in := nodefiles.Inputs{Facts: templates.Facts{Interface: "eth0"}}
			in.Kubeadm, _ = r.secrets()
			in.LabNode = templates.LabNodeCredential{Token: token, CAData: enc(ca)}
			files, err := nodefiles.ForPhase(r.Lab, r.node(node), p.Name, in)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, f := range files {
				want = append(want, f.Path)
			}
			sort.Strings(want)
			if strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("%s on %s installed %v; lab render shows %v", p.Name, node, got, want)
			}
		}
	}
}

// unstaged is where a file uploaded to the load balancer's staging
// directory goes once judged.
func unstaged(p string) string {
	if path.Dir(p) != stagingDir {
		return p
	}
	for _, f := range []string{templates.HAProxyConfigPath, templates.KeepalivedConfigPath} {
		if path.Base(f) == path.Base(p) {
			return f
		}
	}
	return p
}
