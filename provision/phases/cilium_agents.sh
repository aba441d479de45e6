# Prints one line per Cilium agent pod: node, pod, whether the agent
# container is ready, its restarts, then what `cilium-dbg status --brief`
# says in it (asked of ready agents only, each within $2 seconds). It
# only reads. $1 is the admin kubeconfig.
kubectl --kubeconfig "$1" -n kube-system get pods -l k8s-app=cilium --no-headers \
	-o custom-columns='NODE:.spec.nodeName,POD:.metadata.name,READY:.status.containerStatuses[0].ready,RESTARTS:.status.containerStatuses[0].restartCount' |
	while read -r node pod ready restarts; do
		brief='(agent not ready)'
		if [ "$ready" = true ]; then
			brief=$(timeout "$2" kubectl --kubeconfig "$1" -n kube-system exec "$pod" -c cilium-agent -- cilium-dbg status --brief </dev/null 2>&1 | head -n 1)
		fi
		echo "$node $pod $ready $restarts ${brief:-(no answer)}"
	done
