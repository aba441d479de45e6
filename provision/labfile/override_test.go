package labfile

import (
	"strings"
	"testing"
)

// TestOverridesToDocker loads the study's VirtualBox week 4 for container
// nodes: the VirtualBox settings go, names and addresses stay, Kubernetes
// comes from the build source, and the values an offline lab leaves out
// are warned about at their lines.
func TestOverridesToDocker(t *testing.T) {
	l, warns, err := LoadWith("../../labs/cilium-study/4w.yaml", Overrides{Provider: ProviderDocker,
		Set: []string{"kubernetes.version=v1.34.12", "cni.cilium.version=1.18.1"}})
	if err != nil {
		t.Fatal(err)
	}
	if l.Provider.Type != ProviderDocker || l.Provider.Vagrant != nil || l.Provider.Docker.Image != DefaultDockerImage {
		t.Errorf("provider %+v, want docker with the default image and no vagrant settings", l.Provider)
	}
	if l.SSH.User != "root" || l.SSH.KnownHosts != KnownHostsPinned {
		t.Errorf("ssh %+v, want root with pinned host keys (container nodes)", l.SSH)
	}
	if l.Kubernetes.Artifacts != ArtifactsBuild || l.Kubernetes.Version != "v1.34.12" || l.CNI.Cilium.Version != "1.18.1" {
		t.Errorf("kubernetes %s %s, cilium %s; want build v1.34.12, 1.18.1", l.Kubernetes.Artifacts, l.Kubernetes.Version, l.CNI.Cilium.Version)
	}
	for _, n := range l.Nodes {
		if n.CPUs != 0 || n.Memory != 0 {
			t.Errorf("%s keeps its VM size %d/%d", n.Name, n.CPUs, n.Memory)
		}
	}
	if w0 := l.Node("k8s-w0"); w0 == nil || w0.Addresses["lab2"] != "192.168.20.100" || l.NodeIP(w0).String() != "192.168.20.100" {
		t.Errorf("k8s-w0 lost its address in the second subnet: %+v", w0)
	}
	var ui bool
	for _, w := range warns {
		if strings.Contains(w.Path, "hubble.ui.enabled") && w.Line > 0 && strings.Contains(w.File, "with --provider docker") {
			ui = true
		}
	}
	if !ui {
		t.Errorf("no warning at its line that the Hubble UI is left out offline: %v", warns)
	}
}

func TestOverridesSet(t *testing.T) {
	src := []byte(`apiVersion: lab/v1alpha1
kind: Lab
metadata: {name: one}
networks: [{name: lab, cidr: 172.31.0.0/24}]
nodes:
  - {name: cp1, roles: [control-plane], addresses: {lab: 172.31.0.11}}
`)
	l, _, err := ParseWith("one.yaml", src, Overrides{Set: []string{"metadata.name=two", "nodes[0].labels.tier=a", "controlPlane.apiPort=7443"}})
	if err != nil {
		t.Fatal(err)
	}
	if l.Metadata.Name != "two" || l.Nodes[0].Labels["tier"] != "a" || l.ControlPlane.APIPort != 7443 {
		t.Errorf("overrides not applied: %s %v port %d", l.Metadata.Name, l.Nodes[0].Labels, l.ControlPlane.APIPort)
	}
	for _, tc := range []struct{ set, want string }{
		{"nodes[3].name=x", "nodes has no item 3"},
		{"metadata", "write PATH=VALUE"},
		{"kubernetes.version=1.2", `"v1.2" is not a Kubernetes version`},
		{"kubernetes.nope=1", "nope"},
	} {
		_, _, err := ParseWith("one.yaml", src, Overrides{Set: []string{tc.set}})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("--set %s: %v, want %q", tc.set, err, tc.want)
		}
	}
	if _, _, err := ParseWith("one.yaml", src, Overrides{Provider: "static"}); err == nil || !strings.Contains(err.Error(), "only docker") {
		t.Errorf("--provider static: %v", err)
	}
}
