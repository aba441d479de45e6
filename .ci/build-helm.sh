#!/usr/bin/env bash
# build-helm.sh gets the judges of lab's Cilium values: a helm binary built
# from the Go module proxy, and the real Cilium Helm chart of every version
# the tests render against. Cilium publishes no chart to the module proxy,
# but its chart (with values.schema.json) is part of the Go module
# github.com/cilium/cilium, at install/kubernetes/cilium.
#
# Writes ${LAB_TOOLS_DIR:-<repo>/.cache/tools}/helm and
# <tools>/charts/cilium-<version>/ (a copy of the chart, so that it survives
# `go clean -modcache`). Does nothing for what is already there at the right
# version.
#
# LAB_CILIUM_CHARTS overrides the chart versions (space separated). The
# default is two minor versions: 1.17.6 (the Cilium study's first weeks) and
# 1.18.4 (labfile.DefaultCiliumVersion).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="${LAB_TOOLS_DIR:-$repo/.cache/tools}"
helm_version="v3.19.0"
charts="${LAB_CILIUM_CHARTS:-1.17.6 1.18.4}"

mkdir -p "$tools/charts"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
# Outside the repository, so that neither lab's go.mod nor GOFLAGS such as
# -mod=vendor steer the builds and downloads below.
cd "$scratch"
export GOFLAGS=""

# A plain `go install` leaves helm's release stamps at their source
# defaults: `helm version` says only "v3.19" and helm believes the cluster
# is Kubernetes 1.20. The -X flags set them as helm's own Makefile does
# (1.34 is the minor of the client-go v0.34 that helm v3.19 is built
# with); the tests still pass --kube-version explicitly. The stamped
# version is what makes this step idempotent.
helm_kube_minor=34
helm_is() {
	[[ -x "$1" ]] && [[ "$("$1" version --template '{{.Version}}' 2>/dev/null || true)" == "$helm_version" ]]
}

if helm_is "$tools/helm"; then
	echo "build-helm: $tools/helm is already $helm_version"
else
	start=$SECONDS
	CGO_ENABLED=0 GOBIN="$scratch/bin" go install -trimpath -ldflags "-s -w \
		-X helm.sh/helm/v3/internal/version.version=$helm_version \
		-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 \
		-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$helm_kube_minor \
		-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 \
		-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$helm_kube_minor" \
		"helm.sh/helm/v3/cmd/helm@$helm_version"
	if ! helm_is "$scratch/bin/helm"; then
		echo "build-helm: built helm reports $("$scratch/bin/helm" version --template '{{.Version}}' 2>&1), want $helm_version" >&2
		exit 1
	fi
	mv "$scratch/bin/helm" "$tools/helm"
	echo "build-helm: built $tools/helm ($helm_version, $(du -h "$tools/helm" | cut -f1), $((SECONDS - start)) s)"
fi

for v in $charts; do
	dest="$tools/charts/cilium-$v"
	if [[ -f "$dest/Chart.yaml" ]] && grep -qx "version: $v" "$dest/Chart.yaml"; then
		echo "build-helm: $dest is already Cilium $v"
		continue
	fi
	start=$SECONDS
	# -json prints Dir, where the module was extracted; the zip is checked
	# against sum.golang.org like any module.
	dir="$(go mod download -json "github.com/cilium/cilium@v$v" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
	chart="$dir/install/kubernetes/cilium"
	if [[ ! -f "$chart/Chart.yaml" ]] || ! grep -qx "version: $v" "$chart/Chart.yaml"; then
		echo "build-helm: github.com/cilium/cilium@v$v has no chart $v at install/kubernetes/cilium" >&2
		exit 1
	fi
	rm -rf "$dest" "$dest.tmp"
	cp -R "$chart" "$dest.tmp"
	# The module cache is read-only; the copy should be removable by anyone
	# who can remove .cache.
	chmod -R u+w "$dest.tmp"
	mv "$dest.tmp" "$dest"
	echo "build-helm: $dest from github.com/cilium/cilium@v$v ($(du -sh "$dest" | cut -f1), $((SECONDS - start)) s)"
done
