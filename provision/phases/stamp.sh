stamp=$1
shift
mkdir -p "$(dirname "$stamp")" && {
	while [ $# -ge 2 ]; do
		printf '%s %s %s\n' "$1" "$(stat -c '%s %.9Y %.9Z %i' "$2")" "$2"
		shift 2
	done
} > "$stamp.tmp" && mv -f "$stamp.tmp" "$stamp"
