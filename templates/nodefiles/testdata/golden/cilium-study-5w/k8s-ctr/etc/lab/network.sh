#!/bin/sh
# Rendered by lab for node k8s-ctr of lab cilium-5w. `lab up` overwrites it: edit the lab file instead.
#
# The routes and interfaces lab gives this node, from the lab file's
# routers: "up" makes them so (lab-network.service runs it at boot),
# "check" exits 1 naming the first one missing, "down" removes them.
# A kernel without the dummy driver gets a bridge with no ports instead: it
# holds an address and answers for it the same way.
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
pod_routes=/etc/lab/pod-routes

up() {
	ip route replace 192.168.20.0/24 via 192.168.10.200 || return 1
	ip route replace 10.10.1.0/24 via 192.168.10.200 || return 1
	ip route replace 10.10.2.0/24 via 192.168.10.200 || return 1
	ip route replace 172.20.0.0/16 via 192.168.10.200 || return 1
	if [ -f "$pod_routes" ]; then
		while read -r to via; do ip route replace "$to" via "$via" || return 1; done < "$pod_routes"
	fi
}

check() {
	ip -4 route show exact 192.168.20.0/24 | grep -q ' via 192.168.10.200 ' || { echo 'no route to 192.168.20.0/24 via 192.168.10.200'; return 1; }
	ip -4 route show exact 10.10.1.0/24 | grep -q ' via 192.168.10.200 ' || { echo 'no route to 10.10.1.0/24 via 192.168.10.200'; return 1; }
	ip -4 route show exact 10.10.2.0/24 | grep -q ' via 192.168.10.200 ' || { echo 'no route to 10.10.2.0/24 via 192.168.10.200'; return 1; }
	ip -4 route show exact 172.20.0.0/16 | grep -q ' via 192.168.10.200 ' || { echo 'no route to 172.20.0.0/16 via 192.168.10.200'; return 1; }
	if [ -f "$pod_routes" ]; then
		while read -r to via; do
			ip -4 route show exact "$to" | grep -q " via $via " || { echo "no route to $to via $via"; return 1; }
		done < "$pod_routes"
	fi
}

down() {
	if [ -f "$pod_routes" ]; then
		while read -r to via; do ip route del "$to" via "$via" 2>/dev/null; done < "$pod_routes"
	fi
	ip route del 192.168.20.0/24 via 192.168.10.200 2>/dev/null
	ip route del 10.10.1.0/24 via 192.168.10.200 2>/dev/null
	ip route del 10.10.2.0/24 via 192.168.10.200 2>/dev/null
	ip route del 172.20.0.0/16 via 192.168.10.200 2>/dev/null
	return 0
}

case ${1:-up} in
up) up ;;
check) check ;;
down) down ;;
*) echo "usage: $0 up|check|down" >&2; exit 2 ;;
esac
