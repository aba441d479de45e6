# audit_cilium PODS prints one line per trace Cilium's agent left on the
# node besides files, and nothing on a clean node: mounts, network
# namespaces, routing rules and tables, routes into PODS (the pod
# subnet), tc filters and XDP programs. audit.sh calls it; it only reads.
audit_cilium() (
	pods=$1
	awk '$2 ~ "^(/var)?/run/(cilium|netns/cilium-)" {print "mount " $2 " (" $3 ")"}' /proc/mounts
	ip netns list 2>/dev/null | awk '$1 ~ /^cilium-/ {print "network namespace " $1}'
	for fam in -4 -6; do
		ip "$fam" rule show 2>/dev/null | awk -v fam="$fam" '/lookup (2004|2005|200|202)([^0-9]|$)/ {print "ip " fam " rule " $0}'
		if ip "$fam" rule show 2>/dev/null | grep -Eq '^100:[[:space:]]+from all lookup local' &&
			! ip "$fam" rule show 2>/dev/null | grep -Eq '^0:[[:space:]]+from all lookup local'; then
			echo "ip $fam rule: the local table is looked up at priority 100, where Cilium moved it"
		fi
		for table in 2004 2005 200 202; do ip "$fam" route show table "$table" 2>/dev/null | sed "s/^/ip $fam route table $table: /"; done
	done
	if [ -n "$pods" ]; then ip -4 route show root "$pods" 2>/dev/null | sed 's/^/route to pods: /'; fi
	for l in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
		for hook in ingress egress; do
			if tc filter show dev "$l" "$hook" 2>/dev/null | grep -Eq 'cil_|cilium|bpf_(netdev|network|host|lxc|overlay)'; then
				echo "tc $hook filter of Cilium on $l"
			fi
		done
		if ip -d link show dev "$l" 2>/dev/null | grep -Eq 'prog/xdp.* name cil_'; then echo "XDP program of Cilium on $l"; fi
	done
)
