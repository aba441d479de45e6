set -e
for t in "$@"; do
	ctr -n k8s.io images import "$t" >/dev/null
	rm -f "$t"
done
