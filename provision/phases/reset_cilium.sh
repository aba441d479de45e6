# reset_cilium PODS removes what Cilium's agent leaves on a node besides
# files: first what attaches its programs to the node's devices and
# sockets (tcx and cgroup links pinned under its bpffs directory, tc
# filters, XDP), so that no device keeps programs whose tail-call maps are
# gone; then its mounts, network namespaces, devices, routing rules and
# tables, and the routes into PODS, the pod subnet. Each step tolerates
# what is already gone. reset.sh calls it; its pins and directories go
# with reset's paths after it.
reset_cilium() (
	pods=$1
	rm -rf /sys/fs/bpf/cilium/devices /sys/fs/bpf/cilium/socketlb
	for l in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
		for hook in ingress egress; do
			if tc filter show dev "$l" "$hook" 2>/dev/null | grep -Eq 'cil_|cilium|bpf_(netdev|network|host|lxc|overlay)'; then
				tc filter del dev "$l" "$hook" 2>/dev/null || echo "lab: cannot remove Cilium's tc $hook filters of $l" >&2
			fi
		done
		if ip -d link show dev "$l" 2>/dev/null | grep -Eq 'prog/xdp.* name cil_'; then
			ip link set dev "$l" xdpgeneric off 2>/dev/null
			ip link set dev "$l" xdp off 2>/dev/null || echo "lab: cannot remove Cilium's XDP program of $l" >&2
		fi
	done
	# Its mounts (cgroup2 at /run/cilium/cgroupv2, which rm -rf would
	# walk into, and the endpoints' network namespaces), then those
	# namespaces and its devices (cilium_host, cilium_net, cilium_vxlan,
	# the pods' lxc*; routes through them go with them).
	awk '$2 ~ "^(/var)?/run/(cilium|netns/cilium-)" {print $2}' /proc/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
	ip netns list 2>/dev/null | awk '$1 ~ /^cilium-/ {print $1}' | while read -r n; do ip netns del "$n" 2>/dev/null || true; done
	for l in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E '^(cilium_|lxc)'); do ip link del "$l" 2>/dev/null || true; done
	# Its routing rules and tables (2004 and 2005 for the L7 proxy, 200
	# IPsec, 202 VTEP), the local table's rule it moved from priority 0
	# to 100, and the direct routes to other nodes' pod CIDRs (native
	# routing).
	for fam in -4 -6; do
		ip "$fam" rule show 2>/dev/null | awk -F: '/lookup (2004|2005|200|202)([^0-9]|$)/ {print $1}' | while read -r pref; do
			ip "$fam" rule del pref "$pref" 2>/dev/null || true
		done
		for table in 2004 2005 200 202; do ip "$fam" route flush table "$table" >/dev/null 2>&1 || true; done
		if ip "$fam" rule show 2>/dev/null | grep -Eq '^100:[[:space:]]+from all lookup local' &&
			! ip "$fam" rule show 2>/dev/null | grep -Eq '^0:[[:space:]]+from all lookup local'; then
			ip "$fam" rule add pref 0 lookup local && ip "$fam" rule del pref 100 lookup local
		fi
	done
	if [ -n "$pods" ]; then ip -4 route flush root "$pods" >/dev/null 2>&1 || true; fi
)
