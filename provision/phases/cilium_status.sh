KUBECONFIG=$1 helm status cilium -n kube-system -o json 2>/dev/null | grep -o '"chart_version":"[^"]*"' || true
