command -v helm >/dev/null || { echo 'no helm on the node: lab pushes one when it has it' >&2; exit 1; }
[ -s "$2" ] || { echo "lab: no Cilium chart at $2 (the cni phase sends it)" >&2; exit 1; }
KUBECONFIG=$1 helm upgrade --install cilium "$2" -n kube-system -f "$3" --wait --timeout "$4s" &&
	kubectl --kubeconfig "$1" -n kube-system rollout status ds/cilium --timeout "$4s"
