export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
marker=$1 vip=$2 pods=$3
shift 3
# The paths reset wipes, up to --. An empty directory is no trace:
# containerd makes /etc/cni/net.d.
while [ $# -gt 0 ] && [ "$1" != -- ]; do
	p=$1
	[ -e "$p" ] && ! { [ -d "$p" ] && [ -z "$(ls -A "$p")" ]; } && echo "file $p"
	shift
done
[ $# -eq 0 ] || shift
for p in "$@"; do grep -qs "$marker" "$p" && echo "file $p (rendered by lab)"; done
if [ -n "$vip" ]; then
	ip -4 -o addr show | awk -v vip="$vip/" 'index($4, vip) == 1 {print "vip " $4 " on " $2}'
fi
for u in kubelet lab-node keepalived haproxy lab-network; do systemctl is-active --quiet "$u.service" 2>/dev/null && echo "service $u is running"; done
for p in kubelet kube-apiserver etcd kube-proxy cilium-agent lab-node keepalived haproxy; do pgrep -x "$p" >/dev/null 2>&1 && echo "process $p"; done
for ipt in iptables ip6tables iptables-legacy ip6tables-legacy; do
	command -v "$ipt-save" >/dev/null 2>&1 || continue
	"$ipt-save" 2>/dev/null | grep -E '^:(KUBE|CILIUM)' | cut -d' ' -f1 | sed "s/^:/$ipt chain /"
done
command -v nft >/dev/null 2>&1 && nft list tables 2>/dev/null | awk '$3 ~ /^(kube-proxy|cilium)/ {print "nftables table " $2 " " $3}'
command -v ipvsadm >/dev/null 2>&1 && ipvsadm -Ln 2>/dev/null | awk '$1 == "TCP" || $1 == "UDP" {print "ipvs service " $2}'
ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E '^(cilium_|lxc|lab[0-9a-f]{4}|kube-ipvs0|cni0|flannel)' | sed 's/^/interface /'
# Cilium's traces outside the paths above (audit_cilium.sh).
audit_cilium "$pods"
grep -q '^# BEGIN lab ' /etc/hosts 2>/dev/null && echo "file /etc/hosts (lab's block)"
exit 0
