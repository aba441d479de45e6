package phases

import (
	"strings"
	"testing"

	"github.com/labctl/lab/provision/artifacts"
	"github.com/labctl/lab/provision/labfile"
)

func TestAddonDeployed(t *testing.T) {
	values := map[string]any{"args": []any{"--kubelet-insecure-tls"}, "image": map[string]any{"tag": "v0.8.0"}, "replicas": 1}
	list := `[{"name":"metrics-server","namespace":"kube-system","status":"deployed","chart":"metrics-server-3.12.2"}]`
	got := `{"args":["--kubelet-insecure-tls"],"image":{"tag":"v0.8.0"},"replicas":1}`
	for _, tc := range []struct {
		name, out, chart string
		want             bool
	}{
		{"deployed", list + "\n" + got + "\n", "metrics-server-", true},
		{"exact chart", list + "\n" + got + "\n", "metrics-server-3.12.2", true},
		{"any chart", list + "\n" + got + "\n", "", true},
		{"other chart version", list + "\n" + got + "\n", "metrics-server-3.13.0", false},
		{"other chart", list + "\n" + got + "\n", "grafana-", false},
		{"failed", strings.Replace(list, "deployed", "failed", 1) + "\n" + got + "\n", "metrics-server-", false},
		{"other values", list + "\n" + strings.Replace(got, "v0.8.0", "v0.7.2", 1) + "\n", "metrics-server-", false},
		{"no release", "[]\n", "metrics-server-", false},
		{"no helm", "", "metrics-server-", false},
	} {
		if ok := addonDeployed(tc.out, "metrics-server", tc.chart, values); ok != tc.want {
			t.Errorf("%s: addonDeployed = %v, want %v", tc.name, ok, tc.want)
		}
	}
	if !addonDeployed(list+"\nnull\n", "metrics-server", "", nil) {
		t.Error("a release without values is not deployed as one asked for with none")
	}
}

func TestAddonChart(t *testing.T) {
	for _, tc := range []struct {
		a           labfile.Addon
		chart, repo string
	}{
		{labfile.Addon{Name: "metrics-server"}, "/etc/lab/addons/metrics-server/chart.tgz", ""},
		{labfile.Addon{Name: "mine", Chart: "charts/mine"}, "/etc/lab/addons/mine/chart.tgz", ""},
		{labfile.Addon{Name: "grafana", Chart: "grafana", Repo: "https://grafana.github.io/helm-charts"}, "grafana", "https://grafana.github.io/helm-charts"},
		{labfile.Addon{Name: "podinfo", Chart: "podinfo", Repo: "oci://ghcr.io/stefanprodan/charts/"}, "oci://ghcr.io/stefanprodan/charts/podinfo", ""},
	} {
		chart, repo := addonChart(&tc.a)
		if chart != tc.chart || repo != tc.repo {
			t.Errorf("%s: chart %q repo %q, want %q %q", tc.a.Name, chart, repo, tc.chart, tc.repo)
		}
	}
	s := addonScript(&labfile.Addon{Name: "grafana", Chart: "grafana", Repo: "https://grafana.github.io/helm-charts", Version: "9.3.0", Namespace: "monitoring"})
	if !strings.Contains(s, "'9.3.0' 'https://grafana.github.io/helm-charts'") {
		t.Errorf("a repository chart's script does not pass its version and repository:\n%s", s)
	}
}

func TestAddonStamp(t *testing.T) {
	sets := map[string]*artifacts.AddonSet{
		"metrics-server":         {Key: "k1", Images: []artifacts.Image{{Ref: artifacts.AddonImageRef("metrics-server", "v0.8.0"), ID: "sha256:aa"}}},
		"local-path-provisioner": {Key: "k2", Images: []artifacts.Image{{Ref: artifacts.AddonImageRef("local-path-provisioner", "v0.0.30"), ID: "sha256:bb"}}},
	}
	images, _ := addonImages(sets)
	got, ok := parseImageStamp(string(addonStamp(sets, images)))
	if !ok || len(got) != 2 || got[0].Ref != "lab.local/addons/local-path-provisioner:v0.0.30" || got[1].ID != "sha256:aa" {
		t.Fatalf("stamp read back as %v, %v", got, ok)
	}
}
