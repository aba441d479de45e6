for p in "$@"; do [ -x "$p" ] && exec "$p"; done
echo "lab: no sftp-server found in $*" >&2
exit 127
