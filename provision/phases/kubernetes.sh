set -eu
minor=$1 version=$2
export DEBIAN_FRONTEND=noninteractive
# shellcheck source=/dev/null # the node's own, read for its ID
. /etc/os-release
case "$ID" in debian|ubuntu) ;; *) echo "lab installs Kubernetes packages on Debian and Ubuntu only, not $ID" >&2; exit 1;; esac
mkdir -p /etc/apt/keyrings
key=/etc/apt/keyrings/kubernetes-$minor.gpg
if [ ! -s "$key" ]; then
	command -v gpg >/dev/null || apt-get install -y -qq gpg >/dev/null
	curl -fsSL "https://pkgs.k8s.io/core:/stable:/$minor/deb/Release.key" | gpg --dearmor -o "$key.tmp"
	mv "$key.tmp" "$key"
fi
echo "deb [signed-by=$key] https://pkgs.k8s.io/core:/stable:/$minor/deb/ /" > /etc/apt/sources.list.d/kubernetes.list.tmp
mv /etc/apt/sources.list.d/kubernetes.list.tmp /etc/apt/sources.list.d/kubernetes.list
apt-get update -qq
apt-get install -y -qq --allow-change-held-packages "kubelet=$version" "kubeadm=$version" "kubectl=$version" >/dev/null
apt-mark hold kubelet kubeadm kubectl >/dev/null
systemctl enable --quiet kubelet
