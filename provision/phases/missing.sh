for p in "$@"; do command -v "$p" >/dev/null 2>&1 || echo "$p"; done
