for f in "$@"; do
	if [ -e "$f" ]; then kubeadm reset -f >/dev/null 2>&1; break; fi
done
true
