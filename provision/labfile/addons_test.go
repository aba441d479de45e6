package labfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func addonLab(artifacts, addons string) string {
	return `apiVersion: lab/v1alpha1
kind: Lab
metadata: {name: addons}
networks:
  - {name: lab, cidr: 192.168.10.0/24}
kubernetes: {artifacts: ` + artifacts + `}
nodes:
  - {name: cp1, roles: [control-plane], addresses: {lab: 192.168.10.11}}
addons:
` + addons
}

func TestAddonDefaults(t *testing.T) {
	l, _, err := Parse("a.yaml", []byte(addonLab("build", `  - {name: metrics-server}
  - {name: local-path-provisioner, namespace: storage}
`)))
	if err != nil {
		t.Fatal(err)
	}
	ms, lp := l.Addons[0], l.Addons[1]
	if ms.Version != "v0.8.0" || ms.Namespace != "kube-system" {
		t.Errorf("metrics-server defaults: version %q namespace %q", ms.Version, ms.Namespace)
	}
	if lp.Version != "v0.0.30" || lp.Namespace != "storage" {
		t.Errorf("local-path-provisioner: version %q namespace %q (the file's namespace must stay)", lp.Version, lp.Namespace)
	}
	if got := len(l.InstalledAddons()); got != 2 {
		t.Errorf("%d add-ons installed, want 2", got)
	}
}

// An offline lab leaves out a chart from a repository, with a warning at
// its repo line, and installs the rest; a lab whose nodes reach the
// repository keeps it without a word.
func TestAddonRepoOffline(t *testing.T) {
	addons := `  - {name: metrics-server}
  - name: prometheus
    repo: https://prometheus-community.github.io/helm-charts
    chart: prometheus
    version: 27.20.0
`
	l, warns, err := Parse("a.yaml", []byte(addonLab("build", addons)))
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, w := range warns {
		if w.Path == "addons[1].repo" {
			found = true
			if w.Line != 12 || !strings.Contains(w.Message, "prometheus is left out") {
				t.Errorf("warning %+v, want line 12 saying prometheus is left out", w)
			}
		}
	}
	if !found {
		t.Errorf("no warning about addons[1].repo: %v", warns)
	}
	if got := l.InstalledAddons(); len(got) != 1 || got[0].Name != "metrics-server" {
		t.Errorf("installed %v, want metrics-server alone", got)
	}
	l, warns, err = Parse("a.yaml", []byte(addonLab("release", addons)))
	if err != nil || len(warns) != 0 || len(l.InstalledAddons()) != 2 {
		t.Errorf("online lab: err %v, warnings %v; want both add-ons, no warning", err, warns)
	}
}

// A local chart is found relative to the lab file, and a version that is
// not its Chart.yaml's is refused.
func TestAddonLocalChart(t *testing.T) {
	dir := t.TempDir()
	chart := filepath.Join(dir, "charts", "hello")
	if err := os.MkdirAll(chart, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(chart, "Chart.yaml"), []byte("apiVersion: v2\nname: hello\nversion: \"0.2.0\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	labPath := filepath.Join(dir, "lab.yaml")
	write := func(addons string) {
		if err := os.WriteFile(labPath, []byte(addonLab("build", addons)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("  - {name: hello, chart: charts/hello, version: 0.2.0}\n  - {name: metrics-server}\n")
	l, _, err := Load(labPath)
	if err != nil {
		t.Fatal(err)
	}
	if got := l.ChartPath(&l.Addons[0]); got != chart {
		t.Errorf("chart path %s, want %s", got, chart)
	}
	if l.Addons[0].Namespace != "hello" {
		t.Errorf("namespace %q, want the add-on's name", l.Addons[0].Namespace)
	}
	write("  - {name: hello, chart: charts/hello, version: 0.3.0}\n")
	_, _, err = Load(labPath)
	if err == nil || !strings.Contains(err.Error(), "Chart.yaml says version 0.2.0") {
		t.Errorf("got %v, want the version refused", err)
	}
}
