package cilium

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/labctl/lab/internal/tooltest"
	"github.com/labctl/lab/provision/artifacts"
	"github.com/labctl/lab/provision/labfile"
	"github.com/labctl/lab/templates"
)

// The tests in this file hand lab's values to the real Cilium Helm chart
// and the real helm, both from .ci/build-helm.sh. helm is found through
// LAB_HELM, else ${LAB_TOOLS_DIR:-<repo>/.cache/tools}/helm, else PATH; the
// charts are <tools>/charts/cilium-<version>. Without them the tests skip,
// unless LAB_REQUIRE_TOOLS=1 (CI), where they fail.

// kubeVersion is the cluster helm renders for: a helm built with go
// install would otherwise assume Kubernetes 1.20.
const kubeVersion = "1.34.0"

// helmBinary returns the judge, checking that it is a Helm 3.
func helmBinary(t *testing.T) string {
	t.Helper()
	abs := tooltest.Find(t, "helm", "LAB_HELM", "run .ci/build-helm.sh")
	out, err := helm(t, abs, "version", "--template", "{{.Version}}")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "v3.") {
		tooltest.Missing(t, fmt.Sprintf("%s is helm %q, the tests need helm 3 (run .ci/build-helm.sh)", abs, out))
	}
	return abs
}

// chart is one real Cilium chart.
type chart struct {
	version string
	dir     string
}

var chartVersion = regexp.MustCompile(`(?m)^version: (\d+)\.(\d+)\.\d+\s*$`)

// charts returns the Cilium charts .ci/build-helm.sh fetched; the tests
// need at least two minor versions, so that a value one release renames
// is caught.
func charts(t *testing.T) []chart {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(tooltest.Dir(), "charts", "cilium-*", "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var out []chart
	minors := map[string]bool{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		m := chartVersion.FindSubmatch(b)
		if m == nil {
			t.Fatalf("%s has no version line", p)
		}
		dir, err := filepath.Abs(filepath.Dir(p))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, chart{version: strings.TrimSpace(string(m[0][len("version: "):])), dir: dir})
		minors[string(m[1])+"."+string(m[2])] = true
	}
	if len(minors) < 2 {
		tooltest.Missing(t, fmt.Sprintf("%d Cilium chart minor versions under %s, the tests need two: run .ci/build-helm.sh",
			len(minors), filepath.Join(tooltest.Dir(), "charts")))
	}
	return out
}

// helm runs helm with a deadline so that a hung judge fails the test
// instead of stalling CI. It returns stdout; the error carries stderr.
func helm(t *testing.T, bin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// A private home, so that no repository or plugin configuration of
	// the machine takes part.
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CONFIG_HOME="+home, "HELM_CACHE_HOME="+home, "HELM_DATA_HOME="+home)
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// render is `helm template` of chart c with values, as `lab up` will
// install it, parsed into its objects.
func render(t *testing.T, bin string, c chart, values []byte) ([]map[string]any, error) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(f, values, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := helm(t, bin, "template", "cilium", c.dir, "--namespace", "kube-system",
		"--kube-version", kubeVersion, "-f", f)
	if err != nil {
		return nil, err
	}
	var objs []map[string]any
	dec := yaml.NewDecoder(strings.NewReader(out))
	for {
		var o map[string]any
		if err := dec.Decode(&o); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("helm template output is not YAML: %v", err)
		}
		if o != nil {
			objs = append(objs, o)
		}
	}
	return objs, nil
}

// object returns the rendered object of kind and name, or nil.
func object(objs []map[string]any, kind, name string) map[string]any {
	for _, o := range objs {
		if o["kind"] == kind {
			if md, ok := o["metadata"].(map[string]any); ok && md["name"] == name {
				return o
			}
		}
	}
	return nil
}

// envOf returns the environment of container name in a workload object.
func envOf(t *testing.T, o map[string]any, name string) map[string]string {
	t.Helper()
	cs, _ := get(o, "spec.template.spec.containers")
	list, _ := cs.([]any)
	for _, c := range list {
		cm, _ := c.(map[string]any)
		if cm["name"] != name {
			continue
		}
		env := map[string]string{}
		el, _ := cm["env"].([]any)
		for _, e := range el {
			em, _ := e.(map[string]any)
			if v, ok := em["value"].(string); ok {
				env[fmt.Sprint(em["name"])] = v
			}
		}
		return env
	}
	t.Fatalf("no container %s", name)
	return nil
}

// expectFor is what a lab from labs/ must render to, worked out from the
// lab file alone (not from Values): lab's defaults (every node on the node
// network, so native routing with direct routes, Kubernetes IPAM) unless
// the user's values choose otherwise, as the study's weeks do.
func expectFor(l *labfile.Lab) variant {
	host, port := l.Endpoint()
	e := variant{lab: l, host: host, port: port, kpr: !l.Kubernetes.KubeProxyEnabled(),
		routing: RoutingNative, autoRoutes: true, operators: min(2, len(l.KubernetesNodes())),
		ipam: "kubernetes", nativeCIDR: l.Kubernetes.PodSubnet}
	if v, ok := l.CNI.Cilium.Value("kubeProxyReplacement"); ok {
		e.kpr = labfile.ChartBool(v)
	}
	if v, ok := l.CNI.Cilium.Value("routingMode"); ok {
		e.routing, _ = v.(string)
	}
	if v, ok := l.CNI.Cilium.Value("autoDirectNodeRoutes"); ok {
		e.autoRoutes = labfile.ChartBool(v)
	}
	if v, ok := l.CNI.Cilium.Value("operator.replicas"); ok {
		e.operators, _ = v.(int)
	}
	if v, ok := l.CNI.Cilium.Value("ipam.mode"); ok {
		e.ipam, _ = v.(string)
	}
	if v, ok := l.CNI.Cilium.Value("ipv4NativeRoutingCIDR"); ok {
		e.nativeCIDR, _ = v.(string)
	}
	return e
}

// TestChartRendersLabValues is the judge: for every Cilium lab in labs/
// and every variant, and for every chart version, `helm template` accepts
// lab's values (schema and the chart's own checks), and the objects it
// renders carry what lab derived.
func TestChartRendersLabValues(t *testing.T) {
	bin := helmBinary(t)
	cs := charts(t)
	cases := map[string]variant{}
	for name, l := range ciliumLabs(t) {
		cases[name] = expectFor(l)
	}
	for name, v := range variants(t) {
		cases[name] = v
	}
	for _, c := range cs {
		for _, name := range sorted(cases) {
			e := cases[name]
			t.Run(c.version+"/"+name, func(t *testing.T) {
				facts := factsFor(e.lab)
				values, err := ValuesYAML(e.lab, facts)
				if err != nil {
					t.Fatal(err)
				}
				objs, err := render(t, bin, c, values)
				if err != nil {
					t.Fatal(err)
				}
				checkRendered(t, objs, e, facts)
			})
		}
	}
}

func checkRendered(t *testing.T, objs []map[string]any, e variant, facts templates.Facts) {
	t.Helper()
	cm := object(objs, "ConfigMap", "cilium-config")
	if cm == nil {
		t.Fatal("no cilium-config ConfigMap rendered")
	}
	data, _ := cm["data"].(map[string]any)
	key := func(k, want string) {
		t.Helper()
		if got, ok := data[k]; !ok {
			t.Errorf("cilium-config has no %s, want %q", k, want)
		} else if got != want {
			t.Errorf("cilium-config %s = %q, want %q", k, got, want)
		}
	}
	key("kube-proxy-replacement", strconv.FormatBool(e.kpr))
	key("routing-mode", e.routing)
	key("ipam", e.ipamMode())
	if e.ipamMode() == "kubernetes" {
		key("k8s-require-ipv4-pod-cidr", "true")
	}
	key("devices", facts.Interface)
	if e.kpr {
		key("enable-bpf-masquerade", "true")
	}
	switch e.routing {
	case RoutingNative:
		key("ipv4-native-routing-cidr", e.nativeRoutingCIDR())
		key("auto-direct-node-routes", strconv.FormatBool(e.autoRoutes))
	case RoutingTunnel:
		key("tunnel-protocol", TunnelVXLAN)
		key("auto-direct-node-routes", "false")
		if v, ok := data["ipv4-native-routing-cidr"]; ok {
			t.Errorf("tunnel mode renders ipv4-native-routing-cidr %v", v)
		}
	}
	user := map[string]any{}
	if e.lab.CNI.Cilium != nil && e.lab.CNI.Cilium.Values != nil {
		user = e.lab.CNI.Cilium.Values
	}
	if on, _ := get(user, "bgpControlPlane.enabled"); on == true {
		key("enable-bgp-control-plane", "true")
	} else if v, ok := data["enable-bgp-control-plane"]; ok {
		t.Errorf("BGP control plane rendered (%v) though the user did not ask for it", v)
	}

	// The agent reaches the API server through the lab's endpoint.
	ds := object(objs, "DaemonSet", "cilium")
	if ds == nil {
		t.Fatal("no cilium DaemonSet rendered")
	}
	env := envOf(t, ds, "cilium-agent")
	if got := env["KUBERNETES_SERVICE_HOST"]; got != e.host {
		t.Errorf("cilium-agent KUBERNETES_SERVICE_HOST = %q, want %q", got, e.host)
	}
	if got := env["KUBERNETES_SERVICE_PORT"]; got != strconv.Itoa(e.port) {
		t.Errorf("cilium-agent KUBERNETES_SERVICE_PORT = %q, want %d", got, e.port)
	}

	op := object(objs, "Deployment", "cilium-operator")
	if op == nil {
		t.Fatal("no cilium-operator Deployment rendered")
	}
	if got, _ := get(op, "spec.replicas"); got != e.operators {
		t.Errorf("cilium-operator replicas = %v, want %d", got, e.operators)
	}

	// Hubble relay and UI exist exactly when the user asked for them,
	// and an offline lab has no UI whatever the user asked.
	build := e.lab.Kubernetes.Artifacts == labfile.ArtifactsBuild
	for _, h := range []struct {
		path, name string
		offline    bool
	}{
		{"hubble.relay.enabled", "hubble-relay", true},
		{"hubble.ui.enabled", "hubble-ui", false},
	} {
		asked, _ := get(user, h.path)
		on := asked == true && (h.offline || !build)
		if got := object(objs, "Deployment", h.name) != nil; got != on {
			t.Errorf("Deployment %s rendered: %t, user asked (%s): %v, offline lab: %t", h.name, got, h.path, asked, build)
		}
	}
	checkImages(t, objs, e.lab)
	if np, ok := get(user, "hubble.ui.service.nodePort"); ok {
		svc := object(objs, "Service", "hubble-ui")
		if svc == nil {
			t.Fatal("no hubble-ui Service rendered")
		}
		ports, _ := get(svc, "spec.ports")
		pl, _ := ports.([]any)
		if len(pl) != 1 || pl[0].(map[string]any)["nodePort"] != np {
			t.Errorf("hubble-ui Service ports %v, want nodePort %v", ports, np)
		}
	}
}

// checkImages: every container of an offline lab (kubernetes.artifacts:
// build) runs one of the three images lab built, never pulled, so that no
// pod waits for quay.io; other labs run upstream's images.
func checkImages(t *testing.T, objs []map[string]any, l *labfile.Lab) {
	t.Helper()
	refs := artifacts.CiliumImageRefs(l.CNI.Cilium.Version)
	built := map[string]bool{refs.Agent: true, refs.Operator: true, refs.Relay: true}
	build := l.Kubernetes.Artifacts == labfile.ArtifactsBuild
	n := 0
	for _, o := range objs {
		md, _ := o["metadata"].(map[string]any)
		for _, c := range containers(o) {
			n++
			where := fmt.Sprintf("%s %v, container %v", o["kind"], md["name"], c["name"])
			image, _ := c["image"].(string)
			switch {
			case build && !built[image]:
				t.Errorf("%s: image %q is not one lab built (%s, %s, %s)", where, image, refs.Agent, refs.Operator, refs.Relay)
			case build && c["imagePullPolicy"] != "Never":
				t.Errorf("%s: imagePullPolicy %v, want Never: the nodes reach no registry", where, c["imagePullPolicy"])
			case !build && strings.HasPrefix(image, artifacts.CiliumRepository+"/"):
				t.Errorf("%s: image %q of lab's own build in a lab with artifacts %s", where, image, l.Kubernetes.Artifacts)
			}
		}
	}
	if n == 0 {
		t.Error("no container rendered: the image check checked nothing")
	}
}

// containers are the containers and init containers of a workload (the
// pod template of a DaemonSet, Deployment or Job, a CronJob's job
// template, a bare Pod).
func containers(o map[string]any) []map[string]any {
	var specs []any
	for _, p := range []string{"spec.template.spec", "spec.jobTemplate.spec.template.spec", "spec"} {
		if s, ok := get(o, p); ok {
			specs = append(specs, s)
		}
	}
	var out []map[string]any
	for _, s := range specs {
		sm, _ := s.(map[string]any)
		for _, key := range []string{"initContainers", "containers"} {
			list, _ := sm[key].([]any)
			for _, c := range list {
				if cm, ok := c.(map[string]any); ok {
					out = append(out, cm)
				}
			}
		}
	}
	return out
}

// TestChartRejectsBadValues proves the judge can fail: a value the chart's
// own template check refuses and one its values.schema.json refuses, each
// coming in through the user's cni.cilium.values, fail `helm template` with
// every chart version, while the same lab without them renders.
func TestChartRejectsBadValues(t *testing.T) {
	bin := helmBinary(t)
	cs := charts(t)
	base := labYAML("bad-values", 1, 1, false, "")
	good := parseLab(t, "bad-values", base)
	for _, c := range cs {
		t.Run(c.version, func(t *testing.T) {
			values, err := ValuesYAML(good, factsFor(good))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := render(t, bin, c, values); err != nil {
				t.Fatalf("the lab without bad values must render first: %v", err)
			}
			for name, bad := range map[string]struct{ values, why string }{
				"kubeProxyReplacement maybe": {"kubeProxyReplacement: maybe", "kubeProxyReplacement must be explicitly set"},
				"operator.replicas string":   {"operator:\n        replicas: two", "/operator/replicas"},
				"requireIPv4PodCIDR string":  {"k8s:\n        requireIPv4PodCIDR: maybe", "/k8s/requireIPv4PodCIDR"},
			} {
				l := parseLab(t, "bad-values", labYAML("bad-values", 1, 1, false, "    values:\n      "+bad.values+"\n"))
				values, err := ValuesYAML(l, factsFor(l))
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				_, err = render(t, bin, c, values)
				if err == nil {
					t.Errorf("%s: helm template accepted\n%s", name, values)
				} else if !strings.Contains(err.Error(), bad.why) {
					t.Errorf("%s: helm template failed for another reason than %q: %v", name, bad.why, err)
				}
			}
		})
	}
}
