package addons

import (
	"strings"
	"testing"

	"github.com/labctl/lab/provision/labfile"
)

const labYAML = `apiVersion: lab/v1alpha1
kind: Lab
metadata: {name: addons}
networks: [{name: lab, cidr: 192.168.60.0/24}]
kubernetes: {artifacts: ARTIFACTS}
nodes:
  - {name: cp1, roles: [control-plane], addresses: {lab: 192.168.60.11}}
  - {name: w1, roles: [worker], addresses: {lab: 192.168.60.21}}
addons:
  - name: metrics-server
    values:
      args: [--kubelet-insecure-tls, --metric-resolution=20s]
      image: {repository: example.com/mine/metrics-server}
  - name: local-path-provisioner
  - name: note
    chart: ../../provision/e2e/cluster/testdata/addon-chart
    values: {message: hello}
`

func load(t *testing.T, artifacts string) *labfile.Lab {
	t.Helper()
	l, probs, err := labfile.Parse("lab.yaml", []byte(strings.Replace(labYAML, "ARTIFACTS", artifacts, 1)))
	if err != nil {
		t.Fatalf("%v\n%v", err, probs)
	}
	return l
}

func image(t *testing.T, v map[string]any, key string) map[string]any {
	t.Helper()
	m, ok := v[key].(map[string]any)
	if !ok {
		t.Fatalf("values have no %s mapping: %v", key, v)
	}
	return m
}

func TestValuesOffline(t *testing.T) {
	l := load(t, "build")
	ms, err := Values(l, &l.Addons[0])
	if err != nil {
		t.Fatal(err)
	}
	// The user's args win over lab's; an offline lab's image does not:
	// the nodes have only the image lab built.
	if args, _ := ms["args"].([]any); len(args) != 2 || args[1] != "--metric-resolution=20s" {
		t.Errorf("metrics-server args = %v, want the lab file's", ms["args"])
	}
	if im := image(t, ms, "image"); im["repository"] != "lab.local/addons/metrics-server" || im["tag"] != "v0.8.0" || im["pullPolicy"] != "Never" {
		t.Errorf("metrics-server image = %v, want lab's build, never pulled", im)
	}
	lp, err := Values(l, &l.Addons[1])
	if err != nil {
		t.Fatal(err)
	}
	if h := image(t, lp, "helperImage"); h["repository"] != "lab.local/addons/local-path-provisioner" || h["tag"] != "v0.0.30" {
		t.Errorf("local-path helper image = %v, want lab's build", h)
	}
	if sc := image(t, lp, "storageClass"); sc["defaultClass"] != true {
		t.Errorf("local-path's StorageClass is not the default: %v", sc)
	}
}

func TestValuesOnline(t *testing.T) {
	l := load(t, "packages")
	ms, err := Values(l, &l.Addons[0])
	if err != nil {
		t.Fatal(err)
	}
	if im := image(t, ms, "image"); im["repository"] != "example.com/mine/metrics-server" || im["tag"] != "v0.8.0" || im["pullPolicy"] != nil {
		t.Errorf("metrics-server image = %v, want the lab file's repository at the add-on's version", im)
	}
	lp, err := Values(l, &l.Addons[1])
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := lp["helperImage"]; ok {
		t.Errorf("a lab with a registry keeps upstream's helper image, got %v", lp["helperImage"])
	}
	note, err := Values(l, &l.Addons[2])
	if err != nil {
		t.Fatal(err)
	}
	if len(note) != 1 || note["message"] != "hello" {
		t.Errorf("a chart add-on's values = %v, want the lab file's alone", note)
	}
}

func TestFiles(t *testing.T) {
	l := load(t, "build")
	files, err := Files(l, l.Node("cp1"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 3 {
		t.Fatalf("the first control plane gets %d values files, want 3", len(files))
	}
	for _, f := range files {
		if f.Mode != 0o600 || !strings.HasPrefix(f.Path, Dir+"/") || !strings.HasSuffix(f.Path, "/values.yaml") {
			t.Errorf("%s: mode %o; want 0600 under %s", f.Path, f.Mode, Dir)
		}
	}
	if !strings.Contains(string(files[2].Content), "message: hello") {
		t.Errorf("%s:\n%s", files[2].Path, files[2].Content)
	}
	if files, _ := Files(l, l.Node("w1")); len(files) != 0 {
		t.Errorf("a worker gets add-on files: %v", files)
	}
}
