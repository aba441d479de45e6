ctr -n k8s.io images ls 2>/dev/null | awk -v want=" $* " 'NR > 1 && index(want, " " $1 " ") {print $1, $3}' |
while read -r ref digest; do
	id=$(ctr -n k8s.io content get "$digest" 2>/dev/null | tr -d ' \n' | sed -n 's/.*"config":{[^}]*"digest":"\(sha256:[0-9a-f]*\)".*/\1/p')
	echo "$ref $id"
done
