# Installs or upgrades one add-on with helm, and waits for it: the
# admin kubeconfig, the release, the chart (a .tgz on this node, a chart
# name in the repository, or an oci:// reference), the namespace, the
# values file, the timeout in seconds, the chart version ("" for the
# chart file's own) and the repository URL ("" for none).
set -u
kubeconfig=$1 release=$2 chart=$3 ns=$4 values=$5 timeout=$6 version=$7 repo=$8
command -v helm >/dev/null || { echo 'lab: no helm on the node: lab sends one with the addons phase' >&2; exit 1; }
case $chart in
/*) [ -s "$chart" ] || { echo "lab: no chart at $chart (the addons phase sends it)" >&2; exit 1; } ;;
esac
set -- upgrade --install "$release" "$chart" -n "$ns" --create-namespace -f "$values" --wait --timeout "${timeout}s"
[ -z "$version" ] || set -- "$@" --version "$version"
[ -z "$repo" ] || set -- "$@" --repo "$repo"
KUBECONFIG=$kubeconfig helm "$@" >/dev/null
