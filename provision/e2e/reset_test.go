//go:build e2e

package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/labctl/lab/internal/e2etest"
	"github.com/labctl/lab/provision"
	"github.com/labctl/lab/provision/provider/docker"
	"github.com/labctl/lab/templates"
)

// TestResetAndDown brings a lab up, resets it and checks from outside lab
// that its audit was right: no HAProxy or Keepalived running, no VIP, no
// load-balancer config lab rendered, no lab block in /etc/hosts. A second
// up then converges from the reset nodes. Down leaves no container,
// network or volume labelled with the lab, and no state directory.
func TestResetAndDown(t *testing.T) {
	t.Parallel()
	l := newLab(t, labSpec{prefix: "rst", cps: 2, workers: 1})
	ctx := e2etest.Context(t, 10*time.Minute)
	l.mustUp(t, ctx)
	l.waitOneHolder(t, ctx, 30*time.Second)

	ev := &e2etest.Events{}
	if err := provision.Reset(ctx, l.lab, l.options(ev)); err != nil {
		t.Fatalf("lab reset: %v\n%s", err, ev.Failures())
	}
	if h, err := l.holdersExec(ctx); err != nil || len(h) > 0 {
		t.Errorf("after reset, VIP holders %v (%v)", h, err)
	}
	vip, port := l.vip()
	if err := tcpOpen(vip, port, time.Second); err == nil {
		t.Errorf("after reset, %s:%d still accepts connections", vip, port)
	}
	for i := range l.lab.Nodes {
		n := &l.lab.Nodes[i]
		if out, err := l.exec(ctx, n.Name, "pgrep -l -x 'haproxy|keepalived'"); err == nil {
			t.Errorf("%s: still running after reset:\n%s", n.Name, out)
		}
		files := l.nodeFiles(t, ctx, n)
		var kept []string
		for _, f := range files {
			sum := sha256.Sum256(f.Content)
			out := l.mustExec(t, ctx, n.Name, fmt.Sprintf("[ -f %[1]s ] && sha256sum < %[1]s | cut -d' ' -f1 || true", f.Path))
			if strings.TrimSpace(out) != hex.EncodeToString(sum[:]) {
				continue
			}
			switch f.Path {
			case templates.HAProxyConfigPath, templates.KeepalivedConfigPath, templates.CheckScriptPath:
				t.Errorf("%s: %s is still lab's after reset", n.Name, f.Path)
			default:
				kept = append(kept, f.Path)
			}
		}
		if len(kept) > 0 {
			// Not in the reset's list of duties (issue 4 names kubeadm,
			// CNI, load balancer, VIP and packet rules); logged so that
			// the report shows what stays.
			t.Logf("%s: lab's files that reset keeps: %s", n.Name, strings.Join(kept, ", "))
		}
		hosts := l.mustExec(t, ctx, n.Name, "cat /etc/hosts")
		for _, other := range l.lab.Nodes {
			line := l.lab.NodeIP(&other).String() + " " + other.Name
			if slices.Contains(strings.Split(hosts, "\n"), line) {
				t.Errorf("%s: /etc/hosts still maps %q after reset", n.Name, line)
			}
		}
	}

	// Reset nodes are nodes lab can bring up again.
	l.mustUp(t, ctx)
	l.checkConverged(t, ctx)

	ev = &e2etest.Events{}
	if err := provision.Down(ctx, l.lab, l.options(ev)); err != nil {
		t.Fatalf("lab down: %v\n%s", err, ev.Failures())
	}
	filter := "label=" + docker.LabelLab + "=" + l.name()
	for _, what := range [][]string{
		{"ps", "--all", "--quiet", "--filter", filter},
		{"network", "ls", "--quiet", "--filter", filter},
		{"volume", "ls", "--quiet", "--filter", filter},
	} {
		if left := l.docker(t, ctx, what...); left != "" {
			t.Errorf("after lab down, docker %s lists:\n%s", strings.Join(what[:2], " "), left)
		}
	}
	if _, err := os.Stat(l.stateDir()); !os.IsNotExist(err) {
		t.Errorf("after lab down, the state directory %s is still there (%v)", l.stateDir(), err)
	}
}
