#!/usr/bin/env bash
# Installs the Debian packages lab's main job and test suite need, when any
# is missing (apt-get update first). Safe to run again: it does nothing when
# everything is there. Needs root.
set -euo pipefail

packages=(
	haproxy keepalived frr openssh-server openssh-client sudo iproute2 iptables openssl curl ca-certificates
	docker.io debootstrap util-linux procps psmisc git make
	clang llvm libbpf-dev bpftool iperf3 iputils-ping stress-ng ansible-core vagrant shellcheck zip
)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "deps.sh: missing packages (${missing[*]}); run as root or install them" >&2
	exit 1
fi
echo "deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
