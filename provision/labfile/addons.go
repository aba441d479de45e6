package labfile

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Addon is one thing lab installs into the cluster after the pod network,
// with Helm from the first control plane: a builtin add-on lab knows how to
// build offline (metrics-server, local-path-provisioner), or any chart.
type Addon struct {
	// Name is a builtin add-on's name, or the Helm release name of a
	// chart add-on.
	Name string `yaml:"name"`
	// Version is a builtin's release (default: BuiltinAddons' pinned
	// one), or a chart add-on's chart version (required with repo; with
	// a local chart, checked against its Chart.yaml).
	Version string `yaml:"version,omitempty"`
	// Chart is a chart add-on's chart: a directory holding Chart.yaml or
	// a .tgz, relative to the lab file; or, with Repo, the chart's name in
	// that repository.
	Chart string `yaml:"chart,omitempty"`
	// Repo is a Helm repository URL the first control plane pulls Chart
	// from; only for labs whose nodes reach it (not kubernetes.artifacts:
	// build).
	Repo string `yaml:"repo,omitempty"`
	// Namespace is where the release goes. Default: a builtin's upstream
	// namespace, else the add-on's name.
	Namespace string `yaml:"namespace,omitempty"`
	// Values are merged over the values lab derives for a builtin (lab
	// keeps the image names of an offline lab), or are a chart's values.
	Values map[string]any `yaml:"values,omitempty"`
}

// BuiltinAddon describes an add-on lab builds from its Go module.
type BuiltinAddon struct {
	Name string
	// Module is the Go module the program, and the chart, come from.
	Module string
	// Version is the release lab builds when the lab file names none.
	Version string
	// Namespace is upstream's.
	Namespace string
	// What says in a few words what it gives a cluster.
	What string
}

// Builtin add-on names.
const (
	AddonMetricsServer = "metrics-server"
	AddonLocalPath     = "local-path-provisioner"
)

// BuiltinAddons are the add-ons lab builds from source for offline labs,
// and installs from the same module's chart with upstream's images for the
// others. The slice is new on every call.
func BuiltinAddons() []BuiltinAddon {
	return []BuiltinAddon{
		{Name: AddonMetricsServer, Module: "sigs.k8s.io/metrics-server", Version: "v0.8.0", Namespace: "kube-system",
			What: "resource metrics for kubectl top and autoscalers"},
		{Name: AddonLocalPath, Module: "github.com/rancher/local-path-provisioner", Version: "v0.0.30", Namespace: "local-path-storage",
			What: "a default StorageClass (local-path) whose volumes are directories on the nodes"},
	}
}

// Builtin returns the builtin add-on called name, and whether there is one.
func Builtin(name string) (BuiltinAddon, bool) {
	for _, b := range BuiltinAddons() {
		if b.Name == name {
			return b, true
		}
	}
	return BuiltinAddon{}, false
}

// IsBuiltin reports whether a is one of BuiltinAddons.
func (a *Addon) IsBuiltin() bool {
	_, ok := Builtin(a.Name)
	return ok
}

// ChartPath is a local chart add-on's chart on this machine: Chart as an
// absolute path, relative paths taken from the lab file's directory.
func (l *Lab) ChartPath(a *Addon) string { return chartPath(l.Path, a) }

// chartPath is ChartPath for a lab file at file ("" for none: the
// current directory).
func chartPath(file string, a *Addon) string {
	if a.Chart == "" || a.Repo != "" || filepath.IsAbs(a.Chart) {
		return a.Chart
	}
	base := "."
	if file != "" {
		base = filepath.Dir(file)
	}
	return filepath.Join(base, filepath.FromSlash(a.Chart))
}

// LeavesOut reports whether the lab installs a: an offline lab
// (kubernetes.artifacts: build) leaves out chart add-ons pulled from a
// repository, with a warning, since its nodes reach none.
func (l *Lab) LeavesOut(a *Addon) bool {
	return a.Repo != "" && l.Kubernetes.Artifacts == ArtifactsBuild
}

// InstalledAddons are the add-ons `lab up` installs, in file order.
func (l *Lab) InstalledAddons() []*Addon {
	var out []*Addon
	for i := range l.Addons {
		if !l.LeavesOut(&l.Addons[i]) {
			out = append(out, &l.Addons[i])
		}
	}
	return out
}

func defaultAddons(l *Lab) {
	for i := range l.Addons {
		a := &l.Addons[i]
		if b, ok := Builtin(a.Name); ok {
			a.Version = or(a.Version, b.Version)
			a.Namespace = or(a.Namespace, b.Namespace)
			continue
		}
		a.Namespace = or(a.Namespace, a.Name)
	}
}

var (
	addonRelease = regexp.MustCompile(`^v[0-9]+\.[0-9]+\.[0-9]+$`)
	// wellKnownCharts gives the hint for add-ons people expect lab to
	// know by name.
	wellKnownCharts = map[string]string{
		"prometheus": "Prometheus is a chart add-on: repo: https://prometheus-community.github.io/helm-charts, chart: prometheus, version: <chart version>",
		"grafana":    "Grafana is a chart add-on: repo: https://grafana.github.io/helm-charts, chart: grafana, version: <chart version>",
	}
)

func (v *validator) addons() {
	l := v.lab
	if len(l.Addons) > 0 && len(l.KubernetesNodes()) == 0 {
		v.errorf("addons", "add a control plane, or remove addons", "add-ons are installed into the cluster, and the lab has no Kubernetes nodes")
	}
	seen := map[string]int{}
	var names []string
	for _, b := range BuiltinAddons() {
		names = append(names, b.Name)
	}
	for i := range l.Addons {
		a := &l.Addons[i]
		path := fmt.Sprintf("addons[%d]", i)
		if a.Name == "" {
			v.errorf(path+".name", "name a builtin add-on ("+strings.Join(names, ", ")+") or the Helm release of a chart", "missing")
			continue
		}
		if errs := validation.IsDNS1123Label(a.Name); len(errs) > 0 || len(a.Name) > 53 {
			v.errorf(path+".name", "use lower-case letters, digits and '-', at most 53 characters (a Helm release name)", "%q is not a release name", a.Name)
		}
		if j, ok := seen[a.Name]; ok {
			v.errorf(path+".name", "give each add-on its own name", "%q is also addons[%d]", a.Name, j)
		}
		seen[a.Name] = i
		if errs := validation.IsDNS1123Label(a.Namespace); len(errs) > 0 {
			v.errorf(path+".namespace", "a Kubernetes namespace name", "%q is not a namespace name", a.Namespace)
		}
		if b, ok := Builtin(a.Name); ok {
			if a.Chart != "" || a.Repo != "" {
				v.errorf(path, "drop chart and repo: lab takes "+a.Name+"'s chart from "+b.Module,
					"%s is a builtin add-on", a.Name)
			}
			if !addonRelease.MatchString(a.Version) {
				v.errorf(path+".version", "a release of "+b.Module+" such as "+b.Version, "%q is not a release version", a.Version)
			}
			continue
		}
		v.chartAddon(a, path, names)
	}
	// helm reaches an offline lab's first control plane with the sets
	// lab builds: Cilium's or a builtin add-on's.
	if l.Kubernetes.Artifacts == ArtifactsBuild && l.CNI.Type != CNICilium {
		builtin, chart := false, -1
		for i, a := range l.InstalledAddons() {
			if a.IsBuiltin() {
				builtin = true
			} else if chart < 0 {
				chart = i
			}
		}
		if chart >= 0 && !builtin {
			v.errorf(fmt.Sprintf("addons[%d]", chart), "add a builtin add-on ("+strings.Join(names, ", ")+"), whose set brings helm, or use cni.type: cilium",
				"an offline lab (kubernetes.artifacts: build) installs chart add-ons with the helm lab builds for Cilium or a builtin add-on, and this lab has neither")
		}
	}
}

// chartAddon checks an add-on that is not builtin: a chart from a local
// directory or archive, or from a repository.
func (v *validator) chartAddon(a *Addon, path string, builtins []string) {
	l := v.lab
	if a.Chart == "" {
		hint := wellKnownCharts[a.Name]
		if hint == "" {
			hint = "give chart: a chart directory or .tgz (relative to the lab file), or a chart name with repo:"
		}
		v.errorf(path+".chart", hint, "%q is no builtin add-on (those are %s), and no chart is given", a.Name, strings.Join(builtins, ", "))
		return
	}
	if a.Repo != "" {
		if !strings.HasPrefix(a.Repo, "https://") && !strings.HasPrefix(a.Repo, "http://") && !strings.HasPrefix(a.Repo, "oci://") {
			v.errorf(path+".repo", "a Helm repository URL (https://..., or oci://...)", "%q is not a repository URL", a.Repo)
		}
		if a.Version == "" {
			v.errorf(path+".version", "pin the chart version, so that the lab is the same next week", "missing for a chart from a repository")
		}
		if l.LeavesOut(a) {
			v.warnf(path+".repo", "to have it offline, download the chart (helm pull) and its images, and give chart: the .tgz",
				"%s is left out: an offline lab (kubernetes.artifacts: build) reaches no chart repository", a.Name)
		}
		return
	}
	p := chartPath(v.file, a)
	chartYAML, err := localChartYAML(p)
	if err != nil {
		v.errorf(path+".chart", "a chart directory holding Chart.yaml, or a chart .tgz (helm package), relative to the lab file", "%v", err)
		return
	}
	if a.Version != "" && chartYAML != nil {
		if got := chartYAMLField(chartYAML, "version"); got != "" && got != a.Version {
			v.errorf(path+".version", "write the chart's version ("+got+"), or point chart at the version you mean", "%s's Chart.yaml says version %s", p, got)
		}
	}
}

// localChartYAML reads a local chart's Chart.yaml: nil, nil for a .tgz
// (helm reads it when it installs).
func localChartYAML(p string) ([]byte, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("chart %s: %w", p, err)
	}
	if !fi.IsDir() {
		if !strings.HasSuffix(p, ".tgz") && !strings.HasSuffix(p, ".tar.gz") {
			return nil, fmt.Errorf("chart %s is a file but not a .tgz", p)
		}
		return nil, nil
	}
	data, err := os.ReadFile(filepath.Join(p, "Chart.yaml"))
	if err != nil {
		return nil, fmt.Errorf("chart %s: %w", p, err)
	}
	return data, nil
}

// chartYAMLField is a top-level scalar of Chart.yaml, unquoted.
func chartYAMLField(chartYAML []byte, field string) string {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(field) + `:\s*["']?([^"'\s#]+)`).FindSubmatch(chartYAML)
	if m == nil {
		return ""
	}
	return string(m[1])
}
