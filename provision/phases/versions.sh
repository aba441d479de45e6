kubeadm version -o short 2>/dev/null
kubelet --version 2>/dev/null
kubectl version --client -o yaml 2>/dev/null | awk '/gitVersion/ {print $2}'
