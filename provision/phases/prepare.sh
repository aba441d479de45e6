set -eu
node=$1 blockfile=$2 begin=$3 end=$4 swap=$5 modules=$6 sysctls=$7
if [ "$(hostname)" != "$node" ]; then
	if command -v hostnamectl >/dev/null && hostnamectl set-hostname "$node" 2>/dev/null; then :; else hostname "$node"; echo "$node" > /etc/hostname; fi
fi
want=$(cat "$blockfile")
have=$(sed -n "/^$begin\$/,/^$end\$/p" /etc/hosts)
if [ "$have" != "$want" ]; then
	tmp=$(mktemp /etc/.hosts.lab.XXXXXX)
	{ sed "/^$begin\$/,/^$end\$/d" /etc/hosts; printf '%s\n' "$want"; } > "$tmp"
	chmod 644 "$tmp"
	if mv "$tmp" /etc/hosts 2>/dev/null; then :; else cat "$tmp" > /etc/hosts; rm -f "$tmp"; fi
fi
if [ "$swap" = on ]; then swapoff -a; fi
if grep -Eq '^[^#].*[[:space:]]swap[[:space:]]' /etc/fstab 2>/dev/null; then sed -i.lab-bak -E 's/^([^#].*[[:space:]]swap[[:space:]].*)$/# \1/' /etc/fstab; fi
grep -Ev '^(#|$)' "$modules" | while read -r m; do
	[ -d "/sys/module/$m" ] || modprobe "$m" 2>/dev/null || echo "lab: kernel module $m is not loaded and cannot be loaded here" >&2
done
sysctl -e -q -p "$sysctls" || true
[ "$(cat /proc/sys/net/ipv4/ip_forward)" = 1 ] || { echo 'lab: net.ipv4.ip_forward is still 0' >&2; exit 1; }
