set -eu
out=$(haproxy -c -f "$1" 2>&1) || { echo "haproxy -c rejects the rendered config:"; echo "$out"; exit 1; } >&2
out=$(keepalived -t -f "$2" 2>&1) || { echo "keepalived -t rejects the rendered config (exit $?):"; echo "$out"; exit 1; } >&2
install_if_changed() {
	if cmp -s "$1" "$2"; then echo same; return; fi
	mkdir -p "$(dirname "$2")"
	cp "$1" "$2.lab-new" && chmod 0644 "$2.lab-new" && sync "$2.lab-new" && mv "$2.lab-new" "$2"
	echo changed
}
h=$(install_if_changed "$1" "$3")
k=$(install_if_changed "$2" "$4")
for p in /run/keepalived.pid /run/vrrp.pid; do
	if [ -f "$p" ] && ! kill -0 "$(cat "$p")" 2>/dev/null; then rm -f "$p"; fi
done
systemctl enable --quiet haproxy keepalived
if [ "$h" = changed ] || ! fresh haproxy "$3"; then systemctl restart haproxy; fi
if [ "$k" = changed ] || ! fresh keepalived "$4"; then systemctl restart keepalived; fi
systemctl is-active --quiet haproxy || { systemctl status --no-pager haproxy >&2; exit 1; }
systemctl is-active --quiet keepalived || { systemctl status --no-pager keepalived >&2; exit 1; }
