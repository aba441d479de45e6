// Package e2e proves `lab up` end to end on container nodes: real Docker
// containers booting systemd, real sshd, HAProxy and Keepalived, driven by
// the same provision.Up the CLI runs. The tests carry the build tag e2e
// (go test -tags e2e ./provision/e2e) because each one creates its own lab
// of node containers; they need root, dockerd and the node image, which
// dockertest provides or skips (fails under LAB_REQUIRE_TOOLS=1).
//
// Everything the tests judge is observed independently of lab's own code:
// addresses through docker exec or the nodes' network namespaces, ports
// with TCP connections from the host, services through systemctl show.
//
// Durations (failover, rerun) are logged and, when LAB_FIGURES names a
// file, appended to it as JSON lines; they are never asserted.
package e2e
