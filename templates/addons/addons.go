// Package addons renders the Helm values lab installs each add-on of a lab
// file with: for the builtin add-ons, what makes upstream's chart run on a
// lab (the images lab built for an offline lab, the metrics-server flags
// kubeadm clusters need) under the user's values; for chart add-ons, the
// user's values alone.
package addons

import (
	"bytes"
	"fmt"

	"gopkg.in/yaml.v3"

	"github.com/labctl/lab/provision/artifacts"
	"github.com/labctl/lab/provision/labfile"
	"github.com/labctl/lab/templates"
	"github.com/labctl/lab/templates/helmvalues"
)

// Dir holds every add-on's files on the first control plane, under
// /etc/lab, which reset removes.
const Dir = "/etc/lab/addons"

// ValuesPath is where add-on name's values go on the first control plane.
func ValuesPath(name string) string { return Dir + "/" + name + "/values.yaml" }

// ChartPath is where a chart from this machine goes on the first control
// plane.
func ChartPath(name string) string { return Dir + "/" + name + "/chart.tgz" }

// LocalPathDir is where local-path-provisioner keeps volumes on every
// node (the chart's default, which lab keeps); reset removes it.
const LocalPathDir = "/opt/local-path-provisioner"

// Values returns the values add-on a of lab l is installed with.
func Values(l *labfile.Lab, a *labfile.Addon) (map[string]any, error) {
	user, err := helmvalues.Normalize(a.Values, "values")
	if err != nil {
		return nil, fmt.Errorf("add-on %s: %w", a.Name, err)
	}
	if !a.IsBuiltin() {
		return user, nil
	}
	build := l.Kubernetes.Artifacts == labfile.ArtifactsBuild
	var base, forced map[string]any
	switch a.Name {
	case labfile.AddonMetricsServer:
		// kubeadm's kubelets serve a self-signed certificate, which
		// metrics-server cannot verify (kubeadm's documentation: turn on
		// serverTLSBootstrap, or skip the check). The chart's tag
		// defaults to its appVersion, which is not the release.
		base = map[string]any{
			"args":  []any{"--kubelet-insecure-tls"},
			"image": map[string]any{"tag": a.Version},
		}
		if build {
			forced = map[string]any{"image": builtImage(a)}
		}
	case labfile.AddonLocalPath:
		// The lab's only StorageClass, so that a claim without a class
		// binds.
		base = map[string]any{
			"storageClass": map[string]any{"defaultClass": true},
			"image":        map[string]any{"tag": a.Version},
		}
		if build {
			// lab's image carries the shell and tools the helper pods
			// run (upstream uses busybox for them).
			img := builtImage(a)
			forced = map[string]any{"image": img,
				"helperImage": map[string]any{"repository": img["repository"], "tag": img["tag"]}}
		}
	}
	out := helmvalues.Merge(base, user)
	if forced != nil {
		out = helmvalues.Merge(out, forced)
	}
	return out, nil
}

// builtImage names the image lab built for a, never pulled: the nodes of
// an offline lab reach no registry.
func builtImage(a *labfile.Addon) map[string]any {
	return map[string]any{"repository": artifacts.AddonRepository + "/" + a.Name, "tag": a.Version, "pullPolicy": "Never"}
}

// ValuesYAML is Values as a values.yaml, keys sorted.
func ValuesYAML(l *labfile.Lab, a *labfile.Addon) ([]byte, error) {
	v, err := Values(l, a)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Values of add-on %s for lab %s, rendered by lab from the lab file.\n", a.Name, l.Metadata.Name)
	if len(v) == 0 {
		b.WriteString("{}\n")
		return b.Bytes(), nil
	}
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("add-on %s: values: %w", a.Name, err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("add-on %s: values: %w", a.Name, err)
	}
	return b.Bytes(), nil
}

// Files are the add-ons' values files, on the first control plane, which
// installs them all; 0600, since a chart's values may hold credentials.
func Files(l *labfile.Lab, n *labfile.Node) ([]templates.File, error) {
	if !l.IsFirstControlPlane(n) {
		return nil, nil
	}
	var files []templates.File
	for _, a := range l.InstalledAddons() {
		data, err := ValuesYAML(l, a)
		if err != nil {
			return nil, err
		}
		files = append(files, templates.File{Path: ValuesPath(a.Name), Mode: 0o600, Content: data})
	}
	return files, nil
}
