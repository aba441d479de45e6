package templates

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/labctl/lab/internal/tooltest"
	"github.com/labctl/lab/provision/labfile"
)

// TestFRRConfigPassesVtysh is the judge of the router's frr.conf: FRR's
// own vtysh parses it (vtysh --dryrun) for every lab in labs/ with bgp,
// and refuses a broken copy, so the judge is known to judge.
func TestFRRConfigPassesVtysh(t *testing.T) {
	vtysh := tooltest.Path(t, "vtysh", "apt-get install frr")
	judged := 0
	for name, l := range labs(t) {
		r := l.BGPRouter()
		if r == nil {
			continue
		}
		files, err := BGPFiles(l, r)
		if err != nil || len(files) != 1 || files[0].Path != FRRConfigPath {
			t.Fatalf("%s: router files %v, %v", name, files, err)
		}
		dir := t.TempDir()
		good := filepath.Join(dir, "frr.conf")
		bad := filepath.Join(dir, "bad.conf")
		if err := os.WriteFile(good, files[0].Content, 0o600); err != nil {
			t.Fatal(err)
		}
		broken := strings.Replace(string(files[0].Content), " remote-as ", " remote-as-typo ", 1)
		if err := os.WriteFile(bad, []byte(broken), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.CommandContext(t.Context(), vtysh, "--dryrun", "-f", good).CombinedOutput(); err != nil {
			t.Errorf("%s: vtysh --dryrun refuses frr.conf: %v\n%s\n%s", name, err, out, files[0].Content)
		}
		if out, err := exec.CommandContext(t.Context(), vtysh, "--dryrun", "-f", bad).CombinedOutput(); err == nil {
			t.Errorf("%s: vtysh --dryrun accepts a broken frr.conf: the judge judges nothing\n%s", name, out)
		}
		judged++
	}
	if judged == 0 {
		t.Fatal("no lab in labs/ has bgp: nothing to judge")
	}
}

// TestCiliumBGPResources pins the shape of the resources for the study's
// BGP week: one cluster config per router address the nodes use, the
// right ASNs and peers, and both advertisements.
func TestCiliumBGPResources(t *testing.T) {
	l, _, err := labfile.Load("../labs/cilium-study/5w.yaml")
	if err != nil {
		t.Fatal(err)
	}
	files, err := BGPFiles(l, l.ControlPlanes()[0])
	if err != nil || len(files) != 1 {
		t.Fatalf("first control plane's BGP files: %v, %v", files, err)
	}
	got := string(files[0].Content)
	for _, want := range []string{
		"apiVersion: cilium.io/v2\nkind: CiliumBGPClusterConfig",
		"name: lab-192-168-10-200", "peerAddress: 192.168.10.200", "- k8s-ctr\n          - k8s-w1\n",
		"name: lab-192-168-20-200", "peerAddress: 192.168.20.200", "- k8s-w0\n",
		"localASN: 65001", "peerASN: 65000",
		"advertisementType: PodCIDR", "- LoadBalancerIP",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("cilium-bgp.yaml lacks %q:\n%s", want, got)
		}
	}
	if files, _ := BGPFiles(l, l.Node("k8s-w1")); len(files) != 0 {
		t.Errorf("a worker gets BGP files: %v", files)
	}
}
