package sshtest

import (
	"fmt"
	"os/exec"
)

// JumpChain starts hops jump hosts and a target node, each in its own
// network namespace, linked in a line by veth pairs:
//
//	host ── jump1 ── jump2 ── ... ── target
//
// Namespaces do not forward packets, so the host reaches only jump1, each
// jump host only its neighbours, and the target is reachable only through
// the whole chain, as with a real bastion. The jump hosts allow TCP
// forwarding. Everything is removed by the test's cleanup.
func (h *Harness) JumpChain(name string, hops int) (jumps []*Node, target *Node) {
	h.t.Helper()
	Require(h.t, "ip")
	if hops < 1 {
		h.t.Fatalf("sshtest: a jump chain needs at least one jump host")
	}
	h.mu.Lock()
	h.links++
	chain := h.links
	h.mu.Unlock()

	ns := make([]string, hops+1)
	for i := range ns {
		ns[i] = fmt.Sprintf("lab%s-%d-%d", h.ID, chain, i)
		if err := run("ip", "netns", "add", ns[i]); err != nil {
			h.t.Fatalf("sshtest: %v", err)
		}
		n := ns[i]
		h.t.Cleanup(func() {
			if err := run("ip", "netns", "del", n); err != nil {
				h.t.Logf("sshtest: %v", err)
			}
		})
		h.must("ip", "-n", ns[i], "link", "set", "lo", "up")
	}

	// The host's link to the first namespace: a /30 in 10.x.y.0 chosen from
	// the harness's random bytes, so parallel harnesses do not collide.
	hostIf := fmt.Sprintf("lab%s%d", h.ID, chain)
	sub := fmt.Sprintf("10.%d.%d", h.netbase[0], (int(h.netbase[1])+chain*4)%256)
	h.must("ip", "link", "add", hostIf, "type", "veth", "peer", "name", "up0", "netns", ns[0])
	h.t.Cleanup(func() { _ = exec.Command("ip", "link", "del", hostIf).Run() })
	h.must("ip", "addr", "add", sub+".1/30", "dev", hostIf)
	h.must("ip", "link", "set", hostIf, "up")
	h.must("ip", "-n", ns[0], "addr", "add", sub+".2/30", "dev", "up0")
	h.must("ip", "-n", ns[0], "link", "set", "up0", "up")
	addrs := []string{sub + ".2"}

	// Links between neighbouring namespaces live only inside them.
	for i := 1; i <= hops; i++ {
		down := fmt.Sprintf("down%d", i)
		h.must("ip", "-n", ns[i-1], "link", "add", down, "type", "veth", "peer", "name", "up0", "netns", ns[i])
		a := fmt.Sprintf("172.31.%d", i)
		h.must("ip", "-n", ns[i-1], "addr", "add", a+".1/30", "dev", down)
		h.must("ip", "-n", ns[i-1], "link", "set", down, "up")
		h.must("ip", "-n", ns[i], "addr", "add", a+".2/30", "dev", "up0")
		h.must("ip", "-n", ns[i], "link", "set", "up0", "up")
		addrs = append(addrs, a+".2")
	}

	for i := 0; i <= hops; i++ {
		opts := NodeOptions{Name: fmt.Sprintf("%s-jump%d", name, i+1), Forwarding: true, netns: ns[i], addr: addrs[i]}
		if i == hops {
			opts = NodeOptions{Name: name, netns: ns[i], addr: addrs[i]}
		}
		n := h.StartNode(opts)
		if i == hops {
			target = n
		} else {
			jumps = append(jumps, n)
		}
	}
	return jumps, target
}

func (h *Harness) must(name string, args ...string) {
	h.t.Helper()
	if err := run(name, args...); err != nil {
		h.t.Fatalf("sshtest: %v", err)
	}
}
