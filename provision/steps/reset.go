package steps

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/labctl/lab/provision/phase"
	"github.com/labctl/lab/templates"
)

// labMarker is in the first lines of every file lab renders; reset removes
// such files and the audit looks for them.
const labMarker = "Rendered by lab"

// renderedPaths are the files lab renders onto nodes; reset removes each one
// that still carries lab's header (a file the user replaced stays).
var renderedPaths = []string{
	templates.HAProxyConfigPath, templates.KeepalivedConfigPath, templates.CheckScriptPath,
	templates.ContainerdConfigPath, templates.CrictlConfigPath, templates.SysctlPath, templates.ModulesPath,
}

// wipedPaths are directories and files Kubernetes, the CNI and lab leave.
var wipedPaths = []string{
	"/etc/kubernetes", "/var/lib/etcd", "/var/lib/kubelet", "/etc/cni/net.d",
	"/opt/cni/bin/lab-node", "/var/lib/lab-node", "/usr/local/bin/lab-node", "/var/lib/cni", "/run/lab-node",
	"/sys/fs/bpf/lab", "/sys/fs/bpf/cilium", "/sys/fs/bpf/tc/globals",
	// lab-node's kubeconfig holds a cluster credential: named on its
	// own so that the audit names it should it survive.
	"/etc/systemd/system/lab-node.service", labNodeConf, "/etc/lab",
	"/root/.kube/config",
}

// resetScript undoes what lab up did on a node. It never fails half way:
// each step tolerates what is already gone, and the audit that follows is
// the judge.
func resetScript(vip netip.Addr, cri string) string {
	var s strings.Builder
	s.WriteString("set -u\nexport PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n")
	fmt.Fprintf(&s, "if command -v kubeadm >/dev/null 2>&1; then kubeadm reset -f --cri-socket %s >/dev/null 2>&1 || echo 'lab: kubeadm reset failed; cleaning up by hand' >&2; fi\n", shq(cri))
	s.WriteString("for u in kubelet lab-node keepalived haproxy; do systemctl disable --now --quiet $u.service 2>/dev/null || true; done\n")
	// lab-node knows its own traces: pinned programs, routes, masquerade
	// rules, pod veths.
	s.WriteString("if [ -x /usr/local/bin/lab-node ]; then /usr/local/bin/lab-node reset >/dev/null 2>&1 || echo 'lab: lab-node reset failed; cleaning up by hand' >&2; fi\n")
	s.WriteString("systemctl daemon-reload 2>/dev/null || true\n")
	// Pods kubeadm reset left to the runtime.
	s.WriteString("if command -v crictl >/dev/null 2>&1 && [ -S /run/containerd/containerd.sock ]; then crictl rmp -af >/dev/null 2>&1 || true; fi\n")
	s.WriteString("for m in $(awk '$2 ~ \"^/var/lib/kubelet\" {print $2}' /proc/mounts | sort -r); do umount -l \"$m\" 2>/dev/null || true; done\n")
	for _, p := range renderedPaths {
		fmt.Fprintf(&s, "grep -qs %s %s && rm -f %s\n", shq(labMarker), shq(p), shq(p))
	}
	// containerd goes back to its defaults with lab's config gone; it
	// recreates its CNI directory when it starts, so that goes after.
	fmt.Fprintf(&s, "[ -e %s ] || systemctl try-restart containerd 2>/dev/null || true\n", shq(templates.ContainerdConfigPath))
	fmt.Fprintf(&s, "rm -rf %s\n", strings.Join(quoteAll(wipedPaths), " "))
	if vip.IsValid() {
		fmt.Fprintf(&s, "ip -4 -o addr show | awk '$4 ~ \"^%s/\" {print $2, $4}' | while read dev addr; do ip addr del \"$addr\" dev \"$dev\"; done\n", strings.ReplaceAll(vip.String(), ".", "\\\\."))
	}
	// Kubernetes' and Cilium's packet rules, in both iptables flavours.
	s.WriteString(`for ipt in iptables ip6tables iptables-legacy ip6tables-legacy; do
	command -v $ipt-save >/dev/null 2>&1 || continue
	if $ipt-save 2>/dev/null | grep -Eq '(KUBE|CILIUM)'; then
		$ipt-save | grep -Ev '(KUBE|CILIUM)' | $ipt-restore || echo "lab: $ipt-restore failed" >&2
	fi
done
if command -v nft >/dev/null 2>&1; then
	nft list tables 2>/dev/null | awk '$3 ~ /^(kube-proxy|cilium)/ {print $2, $3}' | while read fam name; do nft delete table $fam $name; done
fi
if command -v ipvsadm >/dev/null 2>&1; then ipvsadm --clear 2>/dev/null || true; fi
for l in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E '^(cilium_|lxc|lab[0-9a-f]{4}|kube-ipvs0|cni0|flannel)'); do ip link del "$l" 2>/dev/null || true; done
sed -i '/^# BEGIN lab /,/^# END lab /d' /etc/hosts 2>/dev/null || { t=$(sed '/^# BEGIN lab /,/^# END lab /d' /etc/hosts); printf '%s\n' "$t" > /etc/hosts; }
exit 0
`)
	return s.String()
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = shq(s)
	}
	return out
}

// auditScript prints one line per trace of Kubernetes or lab left on a
// node, and nothing on a clean one.
func auditScript(vip netip.Addr) string {
	var s strings.Builder
	s.WriteString("export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n")
	// An empty directory is no trace: containerd makes /etc/cni/net.d.
	fmt.Fprintf(&s, "for p in %s; do [ -e \"$p\" ] && ! { [ -d \"$p\" ] && [ -z \"$(ls -A \"$p\")\" ]; } && echo \"file $p\"; done\n", strings.Join(quoteAll(wipedPaths), " "))
	for _, p := range renderedPaths {
		fmt.Fprintf(&s, "grep -qs %s %s && echo \"file %s (rendered by lab)\"\n", shq(labMarker), shq(p), p)
	}
	if vip.IsValid() {
		fmt.Fprintf(&s, "ip -4 -o addr show | awk '$4 ~ \"^%s/\" {print \"vip \" $4 \" on \" $2}'\n", strings.ReplaceAll(vip.String(), ".", "\\\\."))
	}
	s.WriteString(`for u in kubelet lab-node keepalived haproxy; do systemctl is-active --quiet $u.service 2>/dev/null && echo "service $u is running"; done
for p in kubelet kube-apiserver etcd kube-proxy cilium-agent lab-node keepalived haproxy; do pgrep -x $p >/dev/null 2>&1 && echo "process $p"; done
for ipt in iptables ip6tables iptables-legacy ip6tables-legacy; do
	command -v $ipt-save >/dev/null 2>&1 || continue
	$ipt-save 2>/dev/null | grep -E '^:(KUBE|CILIUM)' | cut -d' ' -f1 | sed "s/^:/$ipt chain /"
done
command -v nft >/dev/null 2>&1 && nft list tables 2>/dev/null | awk '$3 ~ /^(kube-proxy|cilium)/ {print "nftables table " $2 " " $3}'
command -v ipvsadm >/dev/null 2>&1 && ipvsadm -Ln 2>/dev/null | awk '$1 == "TCP" || $1 == "UDP" {print "ipvs service " $2}'
ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E '^(cilium_|lxc|lab[0-9a-f]{4}|kube-ipvs0|cni0|flannel)' | sed 's/^/interface /'
grep -q '^# BEGIN lab ' /etc/hosts 2>/dev/null && echo "file /etc/hosts (lab's block)"
exit 0
`)
	return s.String()
}

func (c *Cluster) vip() netip.Addr {
	a, _ := netip.ParseAddr(c.Lab.ControlPlane.VIP)
	return a
}

// Reset removes what lab up put on every node: kubeadm's cluster state,
// CNI configs and programs, eBPF pins, load-balancer configs and the VIP,
// Kubernetes' and Cilium's packet rules.
func (c *Cluster) Reset() phase.Phase {
	return phase.Phase{
		Name:  "reset",
		Title: "kubeadm reset; remove cluster state, CNI, load balancer, VIP and packet rules",
		Nodes: c.AllNodes,
		Run: func(ctx context.Context, node string) error {
			_, err := c.run(ctx, node, resetScript(c.vip(), c.Lab.Kubernetes.CRISocket))
			return err
		},
		Describe: func(string) []string {
			return []string{"kubeadm reset -f", "stop kubelet, lab-node, keepalived, haproxy", "rm -rf " + strings.Join(wipedPaths, " "),
				"remove the files lab rendered (" + strings.Join(renderedPaths, ", ") + ")",
				"remove the VIP, KUBE-*/CILIUM-* rules, IPVS services, lab's /etc/hosts block"}
		},
	}
}

// Audit fails listing every trace of Kubernetes or lab left on each node.
func (c *Cluster) Audit() phase.Phase {
	return phase.Phase{
		Name:  "audit",
		Title: "prove nothing is left",
		Nodes: c.AllNodes,
		Run: func(ctx context.Context, node string) error {
			out, err := c.run(ctx, node, auditScript(c.vip()))
			if err != nil {
				return err
			}
			if left := strings.TrimSpace(out); left != "" {
				return fmt.Errorf("left after reset: %s", strings.Join(strings.Split(left, "\n"), "; "))
			}
			return nil
		},
	}
}
