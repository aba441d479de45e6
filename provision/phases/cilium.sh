command -v helm >/dev/null || { echo 'no helm on the node: lab pushes one when it has it' >&2; exit 1; }
KUBECONFIG=$1 helm upgrade --install cilium cilium --repo https://helm.cilium.io --version "$2" -n kube-system -f "$3" --wait --timeout 10m &&
	kubectl --kubeconfig "$1" -n kube-system rollout status ds/cilium --timeout "$4s"
