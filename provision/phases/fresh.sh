fresh() (
	u=$1
	shift
	systemctl is-active --quiet "$u" &&
		t=$(systemctl show -p ActiveEnterTimestamp --value "$u") && [ -n "$t" ] &&
		s=$(date -d "$t" +%s) &&
		for f in "$@"; do [ "$(stat -c %Y "$f")" -le "$s" ] || exit 1; done
)
