#!/usr/bin/env bash
# Benchmarks of lab's SSH transport (docs/performance.md): a trivial command
# on 1, 10 and 50 emulated nodes (lab vs bare x/crypto/ssh vs OpenSSH loop,
# xargs -P and Ansible) and a 100 MiB upload to 5 nodes (lab SFTP vs scp),
# plus a re-run of an unchanged upload. Needs root, openssh-server,
# openssh-client and ansible-core. Extra arguments go to sshbench
# (-nodes, -runs, -upload-nodes, -upload-mib, -ansible=false).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p /run/sshd
go run ./bench/sshbench "$@"
echo
echo "## go test -bench (same comparison inside the test binary)"
go test -run '^$' -bench 'FanOut|Upload' -benchtime 5x ./provision/ssh
