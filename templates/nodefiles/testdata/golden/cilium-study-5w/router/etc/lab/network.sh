#!/bin/sh
# Rendered by lab for node router of lab cilium-5w. `lab up` overwrites it: edit the lab file instead.
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
	sysctl -q -w net.ipv4.ip_forward=1 || return 1
	ip link show dev loop1 >/dev/null 2>&1 || ip link add loop1 type dummy 2>/dev/null || ip link add loop1 type bridge || return 1
	ip link set dev loop1 up || return 1
	ip -4 -o addr show dev loop1 | grep -q ' 10.10.1.200/24 ' || ip addr add 10.10.1.200/24 dev loop1 || return 1
	ip link show dev loop2 >/dev/null 2>&1 || ip link add loop2 type dummy 2>/dev/null || ip link add loop2 type bridge || return 1
	ip link set dev loop2 up || return 1
	ip -4 -o addr show dev loop2 | grep -q ' 10.10.2.200/24 ' || ip addr add 10.10.2.200/24 dev loop2 || return 1
	if [ -f "$pod_routes" ]; then
		while read -r to via; do ip route replace "$to" via "$via" || return 1; done < "$pod_routes"
	fi
}

check() {
	[ "$(cat /proc/sys/net/ipv4/ip_forward)" = 1 ] || { echo 'IPv4 forwarding is off'; return 1; }
	ip -4 -o addr show dev loop1 up 2>/dev/null | grep -q ' 10.10.1.200/24 ' || { echo 'interface loop1 lacks 10.10.1.200/24'; return 1; }
	ip -4 -o addr show dev loop2 up 2>/dev/null | grep -q ' 10.10.2.200/24 ' || { echo 'interface loop2 lacks 10.10.2.200/24'; return 1; }
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
	ip link del dev loop1 2>/dev/null
	ip link del dev loop2 2>/dev/null
	return 0
}

case ${1:-up} in
up) up ;;
check) check ;;
down) down ;;
*) echo "usage: $0 up|check|down" >&2; exit 2 ;;
esac
