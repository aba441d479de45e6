//go:build linux

package cniplugin

import (
	"strings"
	"testing"
)

func TestParseNetConf(t *testing.T) {
	c, err := ParseNetConf([]byte(`{"cniVersion":"1.0.0","name":"lab","type":"lab-node","podCIDR":"10.244.1.7/24"}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.podCIDR.String() != "10.244.1.0/24" || c.MTU != DefaultMTU || c.BPFRoot == "" || c.StateDir != DefaultStateDir {
		t.Fatalf("defaults: %+v", c)
	}
	for _, bad := range []string{
		`{"name":"lab","type":"lab-node"}`,
		`{"name":"lab","type":"lab-node","podCIDR":"fd00::/64"}`,
		`{"name":"lab","type":"lab-node","podCIDR":"10.244.1.0/24","attachMode":"xdp"}`,
		`not json`,
	} {
		if _, err := ParseNetConf([]byte(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}

func TestHostVethName(t *testing.T) {
	a := HostVethName("0123456789abcdef", "eth0")
	if len(a) > 15 || !strings.HasPrefix(a, "lab") {
		t.Fatalf("%q: want lab + hash within 15 characters", a)
	}
	if a != HostVethName("0123456789abcdef", "eth0") || a == HostVethName("0123456789abcdef", "eth1") {
		t.Fatal("name must be stable per (container, interface) and differ between interfaces")
	}
}
