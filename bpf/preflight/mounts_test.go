package preflight

import (
	"strings"
	"testing"
)

// A systemd-in-docker node as Docker starts it: private mounts, no bpffs.
const containerMounts = `1406 1318 0:170 / / rw,relatime master:1 - overlay overlay rw,lowerdir=/x
1407 1406 0:173 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
1411 1406 0:175 / /sys rw,nosuid,nodev,noexec,relatime - sysfs sysfs rw
1412 1411 0:27 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup rw,nsdelegate
1420 1406 0:180 / /run rw,nosuid,nodev - tmpfs tmpfs rw
`

// The same node after its entrypoint (or lab up's os phase): bpffs
// mounted, everything shared.
const nodeMounts = `1406 1318 0:170 / / rw,relatime shared:600 master:1 - overlay overlay rw,lowerdir=/x
1407 1406 0:173 / /proc rw,nosuid,nodev,noexec,relatime shared:601 - proc proc rw
1411 1406 0:175 / /sys rw,nosuid,nodev,noexec,relatime shared:602 - sysfs sysfs rw
1412 1411 0:27 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:603 - cgroup2 cgroup rw,nsdelegate
1420 1406 0:180 / /run rw,nosuid,nodev shared:604 - tmpfs tmpfs rw
1500 1411 0:190 / /sys/fs/bpf rw,nosuid,nodev,noexec,relatime shared:605 - bpf bpffs rw,mode=700
1501 1420 0:27 / /run/cilium/cgroupv2 rw,relatime shared:606 - cgroup2 none rw
`

// A cgroup v1 host's view (the hierarchies on a tmpfs).
const v1Mounts = `27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
31 23 0:28 / /sys/fs/cgroup rw,relatime shared:2 - tmpfs tmpfs rw,mode=755
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:3 - cgroup2 cgroup2 rw
`

func mounts(t *testing.T, s string) []Mount {
	t.Helper()
	m, err := ParseMountinfo(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestNodeMounts(t *testing.T) {
	before, after, v1 := mounts(t, containerMounts), mounts(t, nodeMounts), mounts(t, v1Mounts)
	for name, c := range map[string]struct {
		err  error
		want string // "" for nil
	}{
		"bpffs missing":         {BPFFSMounted(before, "/sys/fs/bpf"), "/sys/fs/bpf is not a bpf file system"},
		"bpffs mounted":         {BPFFSMounted(after, "/sys/fs/bpf"), ""},
		"private /sys":          {SharedMount(before, "/sys/fs/bpf"), "(on mount /sys) is a private mount"},
		"shared bpffs":          {SharedMount(after, "/sys/fs/bpf"), ""},
		"shared cgroupv2 mount": {SharedMount(after, "/run/cilium/cgroupv2"), ""},
		"cgroup v2":             {Cgroup2At(before, "/sys/fs/cgroup"), ""},
		"cgroup v1 host":        {Cgroup2At(v1, "/sys/fs/cgroup"), "cgroup v1 host"},
	} {
		switch {
		case c.want == "" && c.err != nil:
			t.Errorf("%s: %v", name, c.err)
		case c.want != "" && (c.err == nil || !strings.Contains(c.err.Error(), c.want)):
			t.Errorf("%s: error %v, want one saying %q", name, c.err, c.want)
		}
	}
	if m, ok := MountOf(after, "/sys/fs/bpf/cilium/devices"); !ok || m.FSType != "bpf" {
		t.Errorf("the mount of a pin directory: %+v, %v", m, ok)
	}
	if m, _ := MountOf(after, "/sysfoo"); m.Point != "/" {
		t.Errorf("/sysfoo is on %s, want /", m.Point)
	}
}

func TestParseMountinfo(t *testing.T) {
	m := mounts(t, `36 35 98:0 /mnt1 /mnt\040two rw,noatime master:1 shared:5 - ext3 /dev/root rw,errors=continue`)
	if len(m) != 1 || m[0].Point != "/mnt two" || m[0].FSType != "ext3" || !m[0].Shared {
		t.Errorf("parsed %+v", m)
	}
	for _, bad := range []string{"36 35 98:0 /mnt1 /mnt2 rw", "36 35 98:0 /mnt1 /mnt2 rw master:1 -"} {
		if _, err := ParseMountinfo(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}
