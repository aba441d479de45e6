#!/usr/bin/env bash
# The full HA cluster on container nodes (docs/performance.md, issue 6):
# runs the cluster e2e test (provision/e2e/cluster, build tag e2e) and
# prints its figures — the artifact build (cold on a fresh machine, then
# from the cache), lab up phase by phase, the no-op re-run, memory per
# node, and the failover seen by kubectl through the VIP (RUNS times, the
# stopped control plane back and serving in between). Needs root and what
# .ci/deps.sh installs; the node image is built on first use.
#
#   bench/cluster.sh            # failover 5 times
#   RUNS=10 bench/cluster.sh
#
# The whole test log is kept in $LOG (default a temporary file).
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${RUNS:-5}
log=${LOG:-$(mktemp /tmp/lab-cluster-XXXXXX.log)}
DOCKER_HOST=${DOCKER_HOST:-$(bash .ci/dockerd.sh)}
export DOCKER_HOST

start=$(date +%s)
if ! LAB_FAILOVER_RUNS=$runs go test -tags e2e -count=1 -timeout 60m -v \
	-run '^TestBuildArtifactsHACluster$' ./provision/e2e/cluster >"$log" 2>&1; then
	echo "cluster.sh: the test failed; see $log" >&2
	exit 1
fi
echo "## The HA cluster test, $runs failovers ($(($(date +%s) - start)) s in all)"
grep -E '(TIMING|MEMORY|VIP holder)' "$log" | sed 's/^ *[a-z_]*\.go:[0-9]*: //'
echo
echo "whole log: $log"
