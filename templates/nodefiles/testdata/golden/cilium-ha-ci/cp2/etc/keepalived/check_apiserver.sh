#!/bin/bash
# Rendered by lab for node cp2 of lab cilium-ha-ci. `lab up` overwrites it: edit the lab file instead.
#
# Keepalived's track script: it succeeds only while this node's load-balancer
# path works, so that a node that cannot serve the API gives up the VIP.
#  1. HAProxy answers on its local health endpoint;
#  2. HAProxy accepts connections on the API port;
#  3. if this node holds the VIP, the API port answers on the VIP too.
# Whether any kube-apiserver is healthy is deliberately not checked: that is
# the same on every load-balancer node, so moving the VIP would not help, and
# before `kubeadm init` the VIP must already stand with no apiserver at all
# (kubeadm reaches the control-plane endpoint through it).
# It needs only bash and iproute2, both on every node.
set -u
PATH=/usr/sbin:/usr/bin:/sbin:/bin

fail() {
    echo "check_apiserver: $*" >&2
    exit 1
}

# connect HOST PORT succeeds when something accepts TCP connections there.
connect() {
    # shellcheck disable=SC2016 # $0 and $1 are the inner bash's own arguments, for it to expand
    timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null
}

# shellcheck disable=SC2016 # as in connect: the inner bash expands $0 and $1
status=$(timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1" &&
    printf "GET /healthz HTTP/1.0\r\n\r\n" >&3 && head -n 1 <&3' 127.0.0.1 8404 2>/dev/null)
case $status in
"HTTP/1."?" 200 "* | "HTTP/1."?" 503 "*) ;;
"") fail "HAProxy does not answer on 127.0.0.1:8404" ;;
*) fail "HAProxy's health endpoint answers oddly (${status%$'\r'})" ;;
esac

connect 127.0.0.1 8443 || fail "nothing accepts on 127.0.0.1:8443"

if ip -4 -o addr show dev eth0 | grep -qF " 172.31.1.10/"; then
    connect 172.31.1.10 8443 || fail "this node holds the VIP but 172.31.1.10:8443 refuses"
fi
exit 0
