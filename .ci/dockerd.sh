#!/usr/bin/env bash
# Starts a Docker daemon for lab's container-node tests, unless one is
# already answering on its socket, and prints the DOCKER_HOST to use:
#
#   export DOCKER_HOST=$(bash .ci/dockerd.sh)
#
# Everything the daemon owns (data, exec root, pid file, socket, log) lives
# under one directory, so it never touches a system Docker. The flags are the
# ones known to work on the CI machines: no default bridge and no iptables
# rules (lab creates its own networks). Running it twice is harmless.
#
# Settings (environment):
#   LAB_DOCKER_DIR       state directory   (default /var/lib/lab-ci-docker)
#   LAB_DOCKER_TIMEOUT   seconds to wait   (default 60)
set -euo pipefail

dir=${LAB_DOCKER_DIR:-/var/lib/lab-ci-docker}
timeout=${LAB_DOCKER_TIMEOUT:-60}
sock=$dir/docker.sock
host=unix://$sock
pidfile=$dir/dockerd.pid
log=$dir/dockerd.log

# The Debian client matches the Debian engine; a newer client elsewhere on
# PATH may speak an API version the engine refuses.
docker=/usr/bin/docker
[ -x "$docker" ] || docker=$(command -v docker || true)
if [ -z "$docker" ] || ! command -v dockerd >/dev/null; then
	echo "dockerd.sh: docker client or dockerd not found; install them (apt-get install docker.io)" >&2
	exit 1
fi

answers() { "$docker" -H "$host" version --format '{{.Server.Version}}' >/dev/null 2>&1; }

# Every node container runs systemd, and each systemd takes inotify
# instances from one host-wide pool (default 128): a few labs at once and
# nodes die at boot with "Too many open files". Raise the pool, never lower.
raise() {
	local cur
	cur=$(cat "/proc/sys/$1" 2>/dev/null) || return 0
	if [ "$cur" -lt "$2" ]; then sysctl -qw "$(echo "$1" | tr / .)=$2" 2>/dev/null || true; fi
}
if [ "$(id -u)" = 0 ]; then
	raise fs/inotify/max_user_instances 8192
	raise fs/inotify/max_user_watches 524288
fi

if answers; then
	echo "$host"
	exit 0
fi

# Two callers at once (parallel test packages) must not both start one.
mkdir -p "$dir"
exec 9>"$dir/start.lock"
flock 9
if answers; then
	echo "$host"
	exit 0
fi

running=
if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
	running=$(cat "$pidfile")
	echo "dockerd.sh: dockerd (pid $running) is starting; waiting for it" >&2
else
	if [ "$(id -u)" != 0 ]; then
		echo "dockerd.sh: dockerd must be started as root" >&2
		exit 1
	fi
	mkdir -p "$dir/data" "$dir/exec"
	rm -f "$pidfile" "$sock"
	# fd 9 (the lock) must not stay open in the daemon.
	setsid nohup dockerd 9>&- \
		--data-root "$dir/data" \
		--exec-root "$dir/exec" \
		--pidfile "$pidfile" \
		--host "$host" \
		--bridge=none \
		--iptables=false \
		>>"$log" 2>&1 </dev/null &
	running=$!
	echo "dockerd.sh: started dockerd (pid $running), log $log" >&2
fi

deadline=$((SECONDS + timeout))
until answers; do
	if ! kill -0 "$running" 2>/dev/null; then
		echo "dockerd.sh: dockerd exited; last lines of $log:" >&2
		tail -n 20 "$log" >&2 || true
		exit 1
	fi
	if [ "$SECONDS" -ge "$deadline" ]; then
		echo "dockerd.sh: dockerd did not answer on $sock within ${timeout}s; last lines of $log:" >&2
		tail -n 20 "$log" >&2 || true
		exit 1
	fi
	sleep 0.2
done
echo "$host"
