package labfile

import (
	"fmt"
	"strconv"
	"strings"
)

// CiliumOfflineValue is a value of Cilium's Helm chart that a lab whose
// artifacts are built on this machine (kubernetes.artifacts: build) cannot
// have: it needs an image lab does not build, and the nodes of such a lab
// reach no registry. templates/cilium sets Path to Off over the user's
// values for those labs, and validation warns, at the line, about each one
// the user's cni.cilium.values ask for, so that nothing is dropped
// silently.
type CiliumOfflineValue struct {
	// Path is the value's dotted path in the chart's values.yaml, e.g.
	// hubble.ui.enabled.
	Path string
	// Off is what lab sets it to: false, or for a choice the one that
	// needs no image.
	Off any
	// Needs says what the value needs that lab cannot build offline.
	Needs string
}

// CiliumOfflineValues are the chart values a build lab leaves out, in the
// order the warnings name them. The chart's other images (certgen,
// hubble-ui, cilium-envoy, clustermesh-apiserver, startup-script, the SPIRE
// images) are only pulled when one of these is on; the three lab builds
// (agent, operator, hubble-relay) are set by templates/cilium. The slice is
// new on every call.
func CiliumOfflineValues() []CiliumOfflineValue {
	const envoy = "Envoy, whose cilium-envoy image lab cannot build here"
	return []CiliumOfflineValue{
		{Path: "l7Proxy", Off: false, Needs: envoy + " (L7 policy, L7 visibility and DNS-aware policy run through it)"},
		{Path: "envoy.enabled", Off: false, Needs: envoy},
		{Path: "envoyConfig.enabled", Off: false, Needs: envoy},
		{Path: "ingressController.enabled", Off: false, Needs: envoy},
		{Path: "gatewayAPI.enabled", Off: false, Needs: envoy},
		{Path: "loadBalancer.l7.backend", Off: "disabled", Needs: envoy},
		{Path: "hubble.ui.enabled", Off: false, Needs: "the hubble-ui and hubble-ui-backend images, which lab cannot build here"},
		{Path: "hubble.tls.auto.method", Off: "helm", Needs: "the certgen image (cronJob) or cert-manager (certmanager), neither of which lab provides offline"},
		{Path: "clustermesh.useAPIServer", Off: false, Needs: "the clustermesh-apiserver image, which lab cannot build here"},
		{Path: "nodeinit.enabled", Off: false, Needs: "the startup-script image, which lab cannot build here"},
		{Path: "preflight.enabled", Off: false, Needs: "the pre-flight DaemonSet's cilium-envoy image, which lab cannot build here"},
		{Path: "authentication.mutual.spire.enabled", Off: false, Needs: "the SPIRE images (spire-server, spire-agent, busybox), which lab cannot build here"},
	}
}

// Asks reports whether v, a user's value at o.Path, asks for what o.Off
// leaves out. Booleans are read as the chart reads them (the strings
// "true" and "false" too); null asks for nothing.
func (o CiliumOfflineValue) Asks(v any) bool {
	if v == nil {
		return false
	}
	switch off := o.Off.(type) {
	case bool:
		return ChartBool(v) != off
	case string:
		return fmt.Sprint(v) != off
	}
	return fmt.Sprint(v) != fmt.Sprint(o.Off)
}

// ChartBool reads a chart boolean the way the chart's templates do: many
// of its booleans also accept the strings "true" and "false".
func ChartBool(v any) bool {
	switch t := v.(type) {
	case bool:
		return t
	case string:
		b, err := strconv.ParseBool(t)
		return err == nil && b
	}
	return false
}

// Value returns the user's value at the dotted path (hubble.ui.enabled)
// of cni.cilium.values, and whether it is given.
func (c *CiliumConfig) Value(path string) (any, bool) {
	if c == nil {
		return nil, false
	}
	var cur any = c.Values
	for _, key := range strings.Split(path, ".") {
		switch m := cur.(type) {
		case map[string]any:
			v, ok := m[key]
			if !ok {
				return nil, false
			}
			cur = v
		case map[any]any:
			v, ok := m[key]
			if !ok {
				return nil, false
			}
			cur = v
		default:
			return nil, false
		}
	}
	return cur, true
}

// ciliumOffline warns about every value of cni.cilium.values that a build
// lab leaves out, at its line.
func (v *validator) ciliumOffline() {
	l := v.lab
	if l.CNI.Type != CNICilium || l.Kubernetes.Artifacts != ArtifactsBuild {
		return
	}
	for _, o := range CiliumOfflineValues() {
		val, ok := l.CNI.Cilium.Value(o.Path)
		if !ok || !o.Asks(val) {
			continue
		}
		v.warnf("cni.cilium.values."+o.Path,
			"to have it, use kubernetes.artifacts: packages or release on nodes with internet access, where upstream's Cilium images are pulled",
			"%v is left out: an offline lab (kubernetes.artifacts: build) sets it to %v, since it needs %s", val, o.Off, o.Needs)
	}
}
