set -e
systemctl enable --now containerd
if [ "$1" = changed ] || ! fresh containerd "$2"; then systemctl restart containerd; fi
