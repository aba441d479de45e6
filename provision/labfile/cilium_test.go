package labfile

import (
	"strings"
	"testing"
)

// ciliumLab is a container lab with Cilium whose artifacts are artifacts
// and whose cni.cilium.values are values (indented under values:).
func ciliumLab(artifacts, values string) string {
	return `apiVersion: lab/v1alpha1
kind: Lab
metadata: {name: offline}
provider: {type: docker}
networks:
  - {name: lab, cidr: 172.31.0.0/24}
kubernetes:
  artifacts: ` + artifacts + `
  kubeProxy: false
cni:
  type: cilium
  cilium:
    version: 1.18.1
    values:
` + values + `nodes:
  - {name: cp1, roles: [control-plane], addresses: {lab: 172.31.0.11}}
`
}

// TestCiliumOfflineWarnings: a build lab whose values ask for what needs
// an image lab cannot build gets one warning per value, at the value's
// line, saying what lab sets instead, why, and what to use instead; a lab
// with another artifact source, or values that ask for nothing left out,
// gets none.
func TestCiliumOfflineWarnings(t *testing.T) {
	values := `      hubble:
        relay: {enabled: true}
        ui:
          enabled: true
        tls:
          auto: {method: cronJob}
      l7Proxy: "true"
      envoy: {enabled: false}
      gatewayAPI: {enabled: true}
`
	src := ciliumLab("build", values)
	_, warns, err := Parse("offline.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	lineOf := func(text string) int {
		for i, l := range strings.Split(src, "\n") {
			if strings.Contains(l, text) {
				return i + 1
			}
		}
		t.Fatalf("no line %q", text)
		return 0
	}
	want := map[string]int{ // path: the line of its value
		"cni.cilium.values.hubble.ui.enabled":      lineOf("          enabled: true"),
		"cni.cilium.values.hubble.tls.auto.method": lineOf("cronJob"),
		"cni.cilium.values.l7Proxy":                lineOf("l7Proxy"),
		"cni.cilium.values.gatewayAPI.enabled":     lineOf("gatewayAPI"),
	}
	got := map[string]Problem{}
	for _, w := range warns {
		if strings.HasPrefix(w.Path, "cni.cilium.values.") {
			got[w.Path] = w
		}
	}
	for path, line := range want {
		w, ok := got[path]
		if !ok {
			t.Errorf("no warning for %s; warnings:\n%s", path, warns)
			continue
		}
		if w.Line != line {
			t.Errorf("%s: warning at line %d, want %d (the value's line)", path, w.Line, line)
		}
		s := w.String()
		for _, part := range []string{"offline.yaml:", "is left out", "kubernetes.artifacts: build", "packages or release"} {
			if !strings.Contains(s, part) {
				t.Errorf("%s: warning %q lacks %q", path, s, part)
			}
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d warnings about cni.cilium.values, want %d:\n%s", len(got), len(want), warns)
	}
	if w := got["cni.cilium.values.hubble.ui.enabled"].String(); !strings.Contains(w, "hubble-ui") || !strings.Contains(w, "sets it to false") {
		t.Errorf("the hubble-ui warning does not say why or what lab sets: %s", w)
	}

	for _, artifacts := range []string{"packages", "release"} {
		_, warns, err := Parse("online.yaml", []byte(ciliumLab(artifacts, values)))
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range warns {
			if strings.HasPrefix(w.Path, "cni.cilium.values.") {
				t.Errorf("artifacts %s: %s", artifacts, w)
			}
		}
	}
	_, warns, err = Parse("quiet.yaml", []byte(ciliumLab("build", "      hubble: {ui: {enabled: false}, tls: {auto: {method: helm}}}\n      l7Proxy: false\n")))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range warns {
		if strings.HasPrefix(w.Path, "cni.cilium.values.") {
			t.Errorf("values that ask for nothing left out: %s", w)
		}
	}
}

func TestCiliumOfflineAsks(t *testing.T) {
	b := CiliumOfflineValue{Path: "x", Off: false}
	s := CiliumOfflineValue{Path: "y", Off: "helm"}
	for _, c := range []struct {
		o    CiliumOfflineValue
		v    any
		want bool
	}{
		{b, true, true}, {b, "true", true}, {b, false, false}, {b, "false", false}, {b, nil, false},
		{s, "cronJob", true}, {s, "certmanager", true}, {s, "helm", false}, {s, nil, false},
	} {
		if got := c.o.Asks(c.v); got != c.want {
			t.Errorf("Off %v: Asks(%v) = %v, want %v", c.o.Off, c.v, got, c.want)
		}
	}
	seen := map[string]bool{}
	for _, o := range CiliumOfflineValues() {
		if seen[o.Path] || o.Needs == "" || o.Asks(o.Off) {
			t.Errorf("%+v: paths are unique, each says what it needs, and Off asks for nothing", o)
		}
		seen[o.Path] = true
	}
}

func TestCiliumValue(t *testing.T) {
	c := &CiliumConfig{Values: map[string]any{"hubble": map[string]any{"ui": map[any]any{"enabled": true}}, "l7Proxy": false}}
	if v, ok := c.Value("hubble.ui.enabled"); !ok || v != true {
		t.Errorf("hubble.ui.enabled = %v, %v", v, ok)
	}
	if v, ok := c.Value("l7Proxy"); !ok || v != false {
		t.Errorf("l7Proxy = %v, %v", v, ok)
	}
	for _, p := range []string{"hubble.relay.enabled", "l7Proxy.enabled", "nope"} {
		if v, ok := c.Value(p); ok {
			t.Errorf("%s = %v, want absent", p, v)
		}
	}
	if _, ok := (*CiliumConfig)(nil).Value("l7Proxy"); ok {
		t.Error("a nil config has values")
	}
}
