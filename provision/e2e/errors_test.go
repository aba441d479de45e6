//go:build e2e

package e2e

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/labctl/lab/internal/e2etest"
	"github.com/labctl/lab/provision"
	"github.com/labctl/lab/provision/workflow"
)

// TestRunTimeErrors breaks a node of a running lab three ways and proves
// that lab up ends with an error naming the node and the phase, and that
// the run after the cause is fixed converges.
func TestRunTimeErrors(t *testing.T) {
	t.Parallel()
	l := newLab(t, labSpec{prefix: "err", cps: 2})
	ctx := e2etest.Context(t, 15*time.Minute)
	l.mustUp(t, ctx)
	const victim = "cp2"

	// converge reruns up after the fix and checks the result from outside.
	converge := func(t *testing.T) {
		t.Helper()
		l.mustUp(t, ctx)
		l.checkConverged(t, ctx)
		ev := l.mustUp(t, ctx)
		if did := notSkipped(ev.All()); len(did) > 0 {
			t.Errorf("the run after convergence did work: %v", did)
		}
	}

	t.Run("stopped node", func(t *testing.T) {
		// `lab up phase loadbalancer` does not run the nodes phase, so a
		// stopped container stays stopped.
		l.docker(t, ctx, "stop", l.container(victim))
		o := l.options(&e2etest.Events{})
		o.Until = ""
		o.Only = []string{"connect", "facts", "loadbalancer"}
		err := provision.Up(ctx, l.lab, o)
		t.Logf("error: %v", err)
		errorContains(t, err, victim, "connect", "stopped")
		converge(t) // the nodes phase starts it again
	})

	t.Run("unreachable node", func(t *testing.T) {
		// The node runs but drops SSH: lab retries (a booting node looks
		// the same) until its deadline, then names node and phase.
		l.mustExec(t, ctx, victim, "iptables -I INPUT -p tcp --dport 22 -j DROP")
		uctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		start := time.Now()
		_, err := l.up(uctx)
		t.Logf("error after %v: %v", time.Since(start).Round(time.Millisecond), err)
		errorContains(t, err, victim, "connect", "cannot connect")
		l.mustExec(t, ctx, victim, "iptables -D INPUT -p tcp --dport 22 -j DROP")
		converge(t)
	})

	t.Run("wrong key", func(t *testing.T) {
		// Another key replaces lab's in the node's authorized_keys. The
		// docker provider authorises lab's key again in the nodes phase,
		// so the failure shows where that phase does not run (lab up
		// --skip-phases nodes, lab up phase X, static hosts).
		_, _, user := l.lab.SSHTarget(l.lab.Node(victim))
		keys := strings.TrimSpace(l.mustExec(t, ctx, victim, `echo "$(getent passwd `+user+` | cut -d: -f6)/.ssh/authorized_keys"`))
		saved := l.mustExec(t, ctx, victim, "cat "+keys)
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		sp, err := gossh.NewPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		l.mustExec(t, ctx, victim, "printf '%s' '"+strings.TrimSpace(string(gossh.MarshalAuthorizedKey(sp)))+"\n' > "+keys)
		o := l.options(&e2etest.Events{})
		o.Skip = []string{"nodes"}
		start := time.Now()
		err = provision.Up(ctx, l.lab, o)
		t.Logf("error after %v: %v", time.Since(start).Round(time.Millisecond), err)
		errorContains(t, err, victim, "connect", "authentication failed", "permanent")
		_, err = l.cli.RunWithInput(ctx, strings.NewReader(saved), "exec", "-i", l.container(victim), "sh", "-c", "cat > "+keys)
		if err != nil {
			t.Fatal(err)
		}
		converge(t)
	})

	t.Run("node dies mid-phase", func(t *testing.T) {
		// The victim is killed as the loadbalancer phase starts on it:
		// its SSH connection (made in connect) now leads nowhere.
		ev := &e2etest.Events{}
		ev.Hook = func(e workflow.Event) {
			if e.Kind == workflow.NodeStart && e.Phase == "loadbalancer" && e.Node == victim {
				if _, err := l.cli.Run(ctx, "kill", "--signal", "KILL", l.container(victim)); err != nil {
					t.Errorf("docker kill: %v", err)
				}
			}
		}
		// lab redials a node it lost and retries for its connect timeout
		// (2 minutes: a rebooting node looks the same); the test's
		// deadline cuts that short, and the error must still say where.
		dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		start := time.Now()
		err := provision.Up(dctx, l.lab, l.options(ev))
		t.Logf("error after %v: %v", time.Since(start).Round(time.Millisecond), err)
		errorContains(t, err, victim, "loadbalancer")
		l.docker(t, ctx, "start", l.container(victim))
		converge(t)
	})
}
