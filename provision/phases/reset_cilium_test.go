package phases

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/labctl/lab/internal/tooltest"
)

// ciliumTraces leaves, in the network and mount namespaces of the shell
// that runs it (a tmpfs over /run and a bpffs of their own keep the
// machine's out of reach), what Cilium's agent leaves on a node: pins,
// its cgroup2 mount, an endpoint's network namespace, its devices, the
// proxy's rules and table, the local rule moved to 100, a route to a pod
// CIDR through its device and a direct route to another node's.
const ciliumTraces = `set -e
mount -t tmpfs lab-test /run
mount -t bpf bpffs /sys/fs/bpf
mkdir -p /sys/fs/bpf/cilium/devices/eth0/links /sys/fs/bpf/cilium/socketlb/links
mkdir -p /run/cilium/cgroupv2
mount -t tmpfs cgroup2-stand-in /run/cilium/cgroupv2
ip netns add cilium-health
ip link set lo up
ip link add eth0 type veth peer name wire0
ip addr add 192.0.2.1/24 dev eth0
ip link set eth0 up
ip link set wire0 up
ip link add cilium_host type veth peer name cilium_net
ip link add lxc0123abcd type veth peer name pod0
ip link set cilium_host up
ip link set cilium_net up
ip route add 10.244.0.0/24 dev cilium_host
ip route add 10.244.1.0/24 via 192.0.2.2 dev eth0
ip rule add pref 9 fwmark 0x200/0xf00 lookup 2004
ip rule add pref 10 fwmark 0xa00/0xf00 lookup 2005
ip route add local 0.0.0.0/0 dev lo table 2004
ip rule add pref 100 lookup local
ip rule del pref 0 lookup local
set +e
`

// TestResetCilium leaves Cilium's traces in namespaces of its own, then
// checks that audit_cilium names every one, that reset_cilium removes
// every one (pins of devices and sockets included, the local rule back
// at 0, the node's own route kept), and that the audit is then silent.
func TestResetCilium(t *testing.T) {
	tooltest.Require(t, "network and mount namespaces to leave Cilium's traces in", "unshare", "ip", "tc")
	const pods = "10.244.0.0/16"
	sh := auditCiliumSh + resetCiliumSh + ciliumTraces +
		"echo '--- before'\naudit_cilium " + pods + "\n" +
		"reset_cilium " + pods + "\n" +
		"echo '--- after'\naudit_cilium " + pods + "\n" +
		"echo '--- state'\nip -o link show | awk -F': ' '{print \"link \" $2}'\nip rule show | sed 's/^/rule /'\n" +
		"ip route show | sed 's/^/route /'\nls /sys/fs/bpf/cilium | sed 's/^/pin /'\n"
	out, err := exec.Command("unshare", "--net", "--mount", "--propagation", "private", "sh", "-c", sh).CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	_, rest, ok1 := strings.Cut(string(out), "--- before\n")
	before, rest, ok2 := strings.Cut(rest, "--- after\n")
	after, state, ok3 := strings.Cut(rest, "--- state\n")
	if !ok1 || !ok2 || !ok3 {
		t.Fatalf("output:\n%s", out)
	}
	for _, want := range []string{
		"mount /run/cilium/cgroupv2 (tmpfs)",
		"network namespace cilium-health",
		"ip -4 rule 9:",
		"ip -4 rule 10:",
		"the local table is looked up at priority 100",
		"ip -4 route table 2004: local default dev lo",
		"route to pods: 10.244.0.0/24 dev cilium_host",
		"route to pods: 10.244.1.0/24 via 192.0.2.2 dev eth0",
	} {
		if !strings.Contains(before, want) {
			t.Errorf("the audit does not name %q:\n%s", want, before)
		}
	}
	if strings.TrimSpace(after) != "" {
		t.Errorf("left after reset_cilium:\n%s", after)
	}
	for _, gone := range []string{"link cilium_host", "link cilium_net", "link lxc0123abcd", "pin devices", "pin socketlb", "100:\tfrom all lookup local"} {
		if strings.Contains(state, gone) {
			t.Errorf("still there after reset_cilium: %q\n%s", gone, state)
		}
	}
	for _, kept := range []string{"link eth0", "rule 0:\tfrom all lookup local", "route 192.0.2.0/24 dev eth0"} {
		if !strings.Contains(state, kept) {
			t.Errorf("reset_cilium removed %q, which is not Cilium's:\n%s", kept, state)
		}
	}
}
