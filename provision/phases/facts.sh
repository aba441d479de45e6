# shellcheck source=/dev/null # the node's own, read for ID and VERSION_ID
. /etc/os-release 2>/dev/null
echo "os=${ID:-unknown}"
echo "osversion=${VERSION_ID:-}"
echo "arch=$(uname -m)"
echo "kernel=$(uname -r)"
echo "hostname=$(hostname)"
echo "container=$(cat /run/systemd/container 2>/dev/null)"
echo "pid1=$(cat /proc/1/comm 2>/dev/null)"
ip -4 -o addr show 2>/dev/null | awk '{print "addr=" $2 " " $4}'
awk 'NR > 1 {print "swap=" $1}' /proc/swaps 2>/dev/null
for b in kubeadm kubelet kubectl containerd runc haproxy keepalived crictl helm lab-node; do
	echo "bin=$b $(command -v "$b" 2>/dev/null)"
done
