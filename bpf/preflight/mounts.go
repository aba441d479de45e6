package preflight

import (
	"errors"
	"fmt"
	"strings"
)

// The checks of a node's set-up that Cilium's chart relies on, besides
// the kernel: they fail on a machine whose kernel is fine but whose
// mounts are not yet as a node needs them (lab up's os phase, and the
// container node image's entrypoint, make them so).
const (
	CheckBPFFS        = "bpffs mounted at /sys/fs/bpf"
	CheckBPFFSShared  = "/sys/fs/bpf is a shared mount"
	CheckCgroup2At    = "cgroup v2 at /sys/fs/cgroup"
	CheckSysctlWrites = "writable /proc/sys/net (the chart's sysctl overwrites)"
)

// NodeSetupChecks are the names of the checks above: what a node lacks
// there, lab up can give it, unlike a kernel feature.
func NodeSetupChecks() []string {
	return []string{CheckBPFFS, CheckBPFFSShared, CheckCgroup2At, CheckSysctlWrites}
}

// Mount is one line of /proc/<pid>/mountinfo.
type Mount struct {
	Point  string
	FSType string
	// Shared is whether the mount is in a peer group (shared:N): mounts
	// made below it propagate to its peers and back, which the kubelet's
	// Bidirectional and HostToContainer mounts need.
	Shared bool
}

// ParseMountinfo reads /proc/<pid>/mountinfo (see proc(5)): mount point
// (field 5), optional fields up to "-", then the file system type.
func ParseMountinfo(data string) ([]Mount, error) {
	var out []Mount
	for n, line := range strings.Split(strings.TrimSpace(data), "\n") {
		f := strings.Fields(line)
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if len(f) < 7 || sep < 0 || sep+1 >= len(f) {
			return nil, fmt.Errorf("mountinfo line %d: %q is not mount point, options, optional fields, -, type", n+1, line)
		}
		m := Mount{Point: unescapeMountPoint(f[4]), FSType: f[sep+1]}
		for _, o := range f[6:sep] {
			if strings.HasPrefix(o, "shared:") {
				m.Shared = true
			}
		}
		out = append(out, m)
	}
	return out, nil
}

// unescapeMountPoint undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountPoint(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var c byte
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &c); err == nil {
				b.WriteByte(c)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// MountOf returns the mount that holds path: the last mount (mounts made
// later hide earlier ones) whose mount point is path or an ancestor of it.
func MountOf(mounts []Mount, path string) (Mount, bool) {
	best, found := Mount{}, false
	for _, m := range mounts {
		if under(path, m.Point) && (!found || len(m.Point) >= len(best.Point)) {
			best, found = m, true
		}
	}
	return best, found
}

func under(path, dir string) bool {
	return dir == "/" || path == dir || strings.HasPrefix(path, dir+"/")
}

// BPFFSMounted is nil when a bpf file system is mounted at dir.
func BPFFSMounted(mounts []Mount, dir string) error {
	m, ok := MountOf(mounts, dir)
	if !ok || m.Point != dir || m.FSType != "bpf" {
		return fmt.Errorf("%s is not a bpf file system; lab up's os phase mounts it (mount -t bpf bpffs %s)", dir, dir)
	}
	return nil
}

// SharedMount is nil when the mount that holds path is shared: the chart
// mounts /sys/fs/bpf into the agent with Bidirectional propagation, which
// the runtime refuses from a private mount ("is not a shared mount").
// systemd makes every mount shared on a machine, but not in a container.
func SharedMount(mounts []Mount, path string) error {
	m, ok := MountOf(mounts, path)
	if !ok {
		return fmt.Errorf("no mount holds %s", path)
	}
	if !m.Shared {
		return fmt.Errorf("%s (on mount %s) is a private mount; lab up's os phase makes it shared (mount --make-rshared /)", path, m.Point)
	}
	return nil
}

// Cgroup2At is nil when dir is the unified cgroup v2 hierarchy. On a
// container node it should be: Cilium attaches its socket programs to the
// cgroup2 root it mounts in the node's cgroup namespace, which on a
// cgroup v1 host (where Docker gives containers the host's namespace) is
// the host's root, shared by every node and the host itself.
func Cgroup2At(mounts []Mount, dir string) error {
	m, ok := MountOf(mounts, dir)
	if !ok || m.Point != dir || m.FSType != "cgroup2" {
		return errors.New(dir + " is not cgroup2 (cgroup v1 host): Cilium's socket load balancing attaches to the host's root cgroup, for every node and the host alike; run container nodes on a cgroup v2 host")
	}
	return nil
}
