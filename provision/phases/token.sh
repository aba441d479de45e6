kubeadm token list -o jsonpath='{.token}{"\n"}' 2>/dev/null | grep -q "^$1\\." || kubeadm token create "$2" --ttl "$3" >/dev/null
