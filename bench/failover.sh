#!/usr/bin/env bash
# VIP failover on container nodes (docs/performance.md): runs the e2e
# failover and load tests (provision/e2e, build tag e2e) on a lab of three
# control planes and a worker, and prints the median and worst time from
# `docker stop` (clean stop) or `docker kill` (crash) of the VIP holder
# until another node holds the VIP and VIP:8443 accepts TCP from the host,
# then the rerun and load figures. Needs root, docker.io, debootstrap and
# stress-ng (the node image is built on first use).
#
#   bench/failover.sh            # 10 runs per way
#   RUNS=30 bench/failover.sh    # more runs
#
# Every measured value is kept as JSON lines in $FIGURES (default a
# temporary file, printed at the end).
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${RUNS:-10}
figures=${FIGURES:-$(mktemp /tmp/lab-failover-XXXXXX.jsonl)}
DOCKER_HOST=${DOCKER_HOST:-$(bash .ci/dockerd.sh)}
export DOCKER_HOST

LAB_FIGURES=$figures LAB_FAILOVER_RUNS=$runs \
	go test -tags e2e -count=1 -timeout 30m \
	-run '^(TestFailover|TestNoFalseFailoverUnderLoad|TestIdempotentRerun)$' ./provision/e2e >/dev/null ||
	{ echo "failover.sh: the tests failed; run them with -v to see why" >&2; exit 1; }

echo "## VIP failover, $runs runs per way (seconds)"
printf '%-8s %8s %8s %12s %12s\n' way median worst moved-median moved-worst
while IFS= read -r line; do
	# {"figure":"failover-summary","way":...,"median_s":...,...}
	way=$(sed -n 's/.*"way":"\([^"]*\)".*/\1/p' <<<"$line")
	get() { sed -n "s/.*\"$1\":\([0-9.e+-]*\).*/\1/p" <<<"$line"; }
	printf '%-8s %8.3f %8.3f %12.3f %12.3f\n' "$way" "$(get median_s)" "$(get worst_s)" "$(get moved_median_s)" "$(get moved_worst_s)"
done < <(grep '"figure":"failover-summary"' "$figures")
echo
grep -E '"figure":"(rerun|load)"' "$figures"
echo
echo "all figures: $figures"
