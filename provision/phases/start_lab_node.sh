systemctl daemon-reload && systemctl enable --quiet lab-node && systemctl restart lab-node &&
	for _ in $(seq 50); do systemctl is-active --quiet lab-node && exit 0; sleep 0.2; done
journalctl -u lab-node -n 20 --no-pager >&2
exit 1
