package docker

import (
	"slices"
	"strings"
	"testing"

	"github.com/labctl/lab/provision/labfile"
)

func TestRunArgsFallBackToAllCapsButSysResource(t *testing.T) {
	got := strings.Join(runArgs(false, false, true, true), " ")
	for _, want := range []string{
		"--cap-add ALL --cap-drop SYS_RESOURCE",
		"--security-opt seccomp=unconfined",
		"--security-opt apparmor=unconfined",
		"--security-opt systempaths=unconfined",
		"--cgroupns host --volume /sys/fs/cgroup:/sys/fs/cgroup:rw",
		"--tmpfs /run --tmpfs /run/lock --tmpfs /tmp",
		"--stop-signal SIGRTMIN+3",
		"--device /dev/kmsg",
		"--volume /lib/modules:/lib/modules:ro",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("unprivileged args lack %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "--privileged") {
		t.Errorf("unprivileged args ask for --privileged:\n%s", got)
	}

	priv := runArgs(true, true, false, false)
	if !slices.Contains(priv, "--privileged") || slices.Contains(priv, "--cap-add") {
		t.Errorf("privileged args = %v", priv)
	}
	if s := strings.Join(priv, " "); !strings.Contains(s, "--cgroupns private") || strings.Contains(s, "/dev/kmsg") || strings.Contains(s, "/lib/modules") {
		t.Errorf("cgroup v2 host without /dev/kmsg and modules: args = %s", s)
	}
}

func TestGatewayAvoidsNodesAndVIP(t *testing.T) {
	const y = `apiVersion: lab/v1alpha1
kind: Lab
metadata: {name: gw}
networks:
  - {name: lab, cidr: 10.9.0.0/24}
  - {name: storage, cidr: 10.9.1.0/24, gateway: 10.9.1.254}
controlPlane: {mode: vip, vip: 10.9.0.2}
nodes:
  - {name: a, roles: [control-plane], addresses: {lab: 10.9.0.1, storage: 10.9.1.1}}
  - {name: b, roles: [control-plane], addresses: {lab: 10.9.0.3, storage: 10.9.1.2}}
`
	lab, _, err := labfile.Parse("gw.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	for net, want := range map[string]string{"lab": "10.9.0.4", "storage": "10.9.1.254"} {
		gw, err := gateway(lab, lab.Network(net))
		if err != nil || gw.String() != want {
			t.Errorf("gateway(%s) = %v, %v; want %s", net, gw, err, want)
		}
	}
	nets := nodeNetworks(lab, lab.Node("a"))
	if len(nets) != 2 || nets[0].net != "lab" || nets[1].net != "storage" {
		t.Errorf("nodeNetworks = %v", nets)
	}
}
