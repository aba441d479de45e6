set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
cri=$1 marker=$2 containerd_conf=$3 vip=$4 pods=$5
shift 5
if command -v kubeadm >/dev/null 2>&1; then kubeadm reset -f --cri-socket "$cri" >/dev/null 2>&1 || echo 'lab: kubeadm reset failed; cleaning up by hand' >&2; fi
for u in kubelet lab-node keepalived haproxy lab-network; do systemctl disable --now --quiet "$u.service" 2>/dev/null || true; done
# lab-node knows its own traces: pinned programs, routes, masquerade rules, pod veths.
if [ -x /usr/local/bin/lab-node ]; then /usr/local/bin/lab-node reset >/dev/null 2>&1 || echo 'lab: lab-node reset failed; cleaning up by hand' >&2; fi
systemctl daemon-reload 2>/dev/null || true
# Pods kubeadm reset left to the runtime.
if command -v crictl >/dev/null 2>&1 && [ -S /run/containerd/containerd.sock ]; then crictl rmp -af >/dev/null 2>&1 || true; fi
awk '$2 ~ "^/var/lib/kubelet" {print $2}' /proc/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
# Cilium's datapath, mounts, rules and routes (reset_cilium.sh), before
# its pins go with the paths below.
reset_cilium "$pods"
# The files lab rendered, up to --: each goes while it still carries lab's marker.
while [ $# -gt 0 ] && [ "$1" != -- ]; do
	grep -qs "$marker" "$1" && rm -f "$1"
	shift
done
[ $# -eq 0 ] || shift
# containerd goes back to its defaults with lab's config gone; it recreates
# its CNI directory when it starts, so the rest goes after.
[ -e "$containerd_conf" ] || systemctl try-restart containerd 2>/dev/null || true
# Never into another file system (a mount left below a path).
rm -rf --one-file-system "$@"
if [ -n "$vip" ]; then
	ip -4 -o addr show | awk -v vip="$vip/" 'index($4, vip) == 1 {print $2, $4}' | while read -r dev addr; do ip addr del "$addr" dev "$dev"; done
fi
# Kubernetes' and Cilium's packet rules, in both iptables flavours.
for ipt in iptables ip6tables iptables-legacy ip6tables-legacy; do
	command -v "$ipt-save" >/dev/null 2>&1 || continue
	if "$ipt-save" 2>/dev/null | grep -Eq '(KUBE|CILIUM)'; then
		"$ipt-save" | grep -Ev '(KUBE|CILIUM)' | "$ipt-restore" || echo "lab: $ipt-restore failed" >&2
	fi
done
if command -v nft >/dev/null 2>&1; then
	nft list tables 2>/dev/null | awk '$3 ~ /^(kube-proxy|cilium)/ {print $2, $3}' | while read -r fam name; do nft delete table "$fam" "$name"; done
fi
if command -v ipvsadm >/dev/null 2>&1; then ipvsadm --clear 2>/dev/null || true; fi
for l in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E '^(cilium_|lxc|lab[0-9a-f]{4}|kube-ipvs0|cni0|flannel)'); do ip link del "$l" 2>/dev/null || true; done
sed -i '/^# BEGIN lab /,/^# END lab /d' /etc/hosts 2>/dev/null || { t=$(sed '/^# BEGIN lab /,/^# END lab /d' /etc/hosts); printf '%s\n' "$t" > /etc/hosts; }
exit 0
