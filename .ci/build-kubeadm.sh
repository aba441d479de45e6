#!/usr/bin/env bash
# build-kubeadm.sh builds the real kubeadm binary of the same Kubernetes version
# as go.mod's k8s.io/kubernetes requirement, so that the tests judge rendered
# configs with exactly the code lab links in-process. It builds from the Go
# module proxy in a scratch module that copies go.mod's replace block, writes
# ${LAB_TOOLS_DIR:-<repo>/.cache/tools}/kubeadm, and does nothing when that
# binary already reports the right version.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="${LAB_TOOLS_DIR:-$repo/.cache/tools}"
out="$tools/kubeadm"

# The version is read from go.mod so that the judge never drifts from the
# library: "k8s.io/kubernetes vX.Y.Z" in a require line.
version="$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v[0-9]/ { print $2; exit }' "$repo/go.mod")"
if [[ -z "$version" ]]; then
	echo "build-kubeadm: no k8s.io/kubernetes requirement in $repo/go.mod" >&2
	exit 1
fi
if [[ ! "$version" =~ ^v([0-9]+)\.([0-9]+)\.[0-9]+$ ]]; then
	echo "build-kubeadm: unexpected k8s.io/kubernetes version $version" >&2
	exit 1
fi
major="${BASH_REMATCH[1]}"
minor="${BASH_REMATCH[2]}"

if [[ -x "$out" ]] && [[ "$("$out" version -o short 2>/dev/null || true)" == "$version" ]]; then
	echo "build-kubeadm: $out is already $version"
	exit 0
fi

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

# The staging modules (k8s.io/api, ...) are required as v0.0.0 by
# k8s.io/kubernetes; only the replace block makes it importable.
{
	echo "module labkubeadmbuild"
	echo
	echo "go $(awk '$1 == "go" { print $2; exit }' "$repo/go.mod")"
	echo
	sed -n '/^replace (/,/^)/p' "$repo/go.mod"
} >"$scratch/go.mod"
cat >"$scratch/tools.go" <<'GO'
//go:build tools

package tools

import _ "k8s.io/kubernetes/cmd/kubeadm"
GO

cd "$scratch"
export GOFLAGS="${GOFLAGS:-} -mod=mod"
# Always pin: an unpinned get resolves to the newest Kubernetes release.
go get "k8s.io/kubernetes@$version" >/dev/null
mkdir -p "$tools"
CGO_ENABLED=0 go build -trimpath -o "$out.tmp" -ldflags "-s -w \
	-X k8s.io/component-base/version.gitVersion=$version \
	-X k8s.io/component-base/version.gitMajor=$major \
	-X k8s.io/component-base/version.gitMinor=$minor \
	-X k8s.io/component-base/version.gitTreeState=clean" \
	k8s.io/kubernetes/cmd/kubeadm
mv "$out.tmp" "$out"

got="$("$out" version -o short)"
if [[ "$got" != "$version" ]]; then
	echo "build-kubeadm: built $out reports $got, want $version" >&2
	exit 1
fi
echo "build-kubeadm: built $out ($version)"
