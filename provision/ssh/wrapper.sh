exec 3<&0
if [ "$2" -gt 0 ]; then
  f=$(mktemp) || exit 125
  head -c "$2" <&3 >"$f" || { rm -f "$f"; exit 125; }
  exec 4<"$f"
  rm -f "$f"
else
  exec 4</dev/null
fi
if command -v setsid >/dev/null 2>&1; then
  setsid sh -c "$1" <&4 3<&- 4<&- &
else
  sh -c "$1" <&4 3<&- 4<&- &
fi
p=$!
exec 4<&-
{ read -r _; kill -s TERM -- -"$p" || kill -s TERM "$p"; sleep "$3"; kill -s KILL -- -"$p" || kill -s KILL "$p"; } <&3 >/dev/null 2>&1 &
w=$!
exec 3<&-
wait "$p"
r=$?
kill "$w" 2>/dev/null
exit "$r"
