for f in "$@"; do [ -f "$f" ] && echo "$f $(sha256sum < "$f" | cut -d' ' -f1) $(stat -c %a "$f")"; done
true
