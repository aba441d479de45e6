package steps

import (
	"context"
	"fmt"
	"net/netip"
	"path"
	"strings"
	"time"

	"github.com/labctl/lab/provision/phase"
	"github.com/labctl/lab/templates"
	"github.com/labctl/lab/templates/nodefiles"
)

// stagingDir is where new load-balancer configs land first: they are judged
// there by the programs that will read them, and only then moved into place.
const stagingDir = "/etc/lab/staging"

// LoadBalancer renders HAProxy and Keepalived for each load-balancer node,
// uploads them to a staging directory, checks them ON the node with
// `haproxy -c` and `keepalived -t`, then moves them into place and reloads
// only the services whose configuration changed.
func (c *Cluster) LoadBalancer() phase.Phase {
	return phase.Phase{
		Name:  nodefiles.LoadBalancer,
		Needs: needsFacts,
		Title: "HAProxy + Keepalived: render, check on the node, install, reload",
		Nodes: func() []string { return names(c.Lab.LoadBalancers()) },
		Done: func(ctx context.Context, node string) (bool, error) {
			files, err := c.files(node, nodefiles.LoadBalancer)
			if err != nil {
				return false, err
			}
			return c.inPlace(ctx, node, files, freshCheck(freshCall("haproxy", templates.HAProxyConfigPath), freshCall("keepalived", templates.KeepalivedConfigPath)))
		},
		Run: func(ctx context.Context, node string) error {
			files, err := c.files(node, nodefiles.LoadBalancer)
			if err != nil {
				return err
			}
			// The configs land in the staging directory; the check script
			// goes straight into place, because keepalived -t checks that
			// the script it names exists and is safe.
			var staged []templates.File
			for _, f := range files {
				if f.Path != templates.CheckScriptPath {
					f.Path = path.Join(stagingDir, path.Base(f.Path))
				}
				staged = append(staged, f)
			}
			_, err = c.install(ctx, node, staged, installLBScript())
			return err
		},
		Describe: func(node string) []string {
			return []string{
				"upload " + templates.HAProxyConfigPath + ", " + templates.KeepalivedConfigPath + " via " + stagingDir,
				"haproxy -c and keepalived -t on the node, then install and reload what changed",
			}
		},
	}
}

// installLBScript judges the staged configs, installs each one that differs
// from the live one (copy beside it, then rename), and restarts only the
// services whose config changed or that started before their config was
// written (a run killed between install and restart). Keepalived keeps a
// stale pid file after a crash and then refuses to start, so one without a
// live process goes.
func installLBScript() string {
	hc, kc := templates.HAProxyConfigPath, templates.KeepalivedConfigPath
	hs, ks := path.Join(stagingDir, path.Base(hc)), path.Join(stagingDir, path.Base(kc))
	return script(freshSh+installLBSh, hs, ks, hc, kc)
}

// VIPHolders asks every load-balancer node whether it holds the VIP.
func (c *Cluster) VIPHolders(ctx context.Context) (holders []string, err error) {
	vip := c.Lab.ControlPlane.VIP
	for _, n := range c.Lab.LoadBalancers() {
		out, rerr := c.run(ctx, n.Name, ipv4AddrsSh)
		if rerr != nil {
			err = rerr
			continue
		}
		for _, a := range strings.Fields(out) {
			if p, perr := netip.ParsePrefix(a); perr == nil && p.Addr().String() == vip {
				holders = append(holders, n.Name)
			}
		}
	}
	return holders, err
}

// VIP waits until exactly one load-balancer node holds the VIP and the API
// port answers on it, seen from every load-balancer node.
func (c *Cluster) VIP(timeout time.Duration) phase.Phase {
	return phase.Phase{
		Name:  "vip",
		Title: "wait for exactly one VIP holder and " + c.Lab.EndpointString() + " to answer",
		Order: phase.Local,
		Nodes: func() []string { return names(c.Lab.LoadBalancers()) },
		Run: func(ctx context.Context, _ string) error {
			if len(c.Lab.LoadBalancers()) == 0 {
				return nil
			}
			host, port := c.Lab.Endpoint()
			probe := fmt.Sprintf("timeout 2 bash -c 'exec 3<>/dev/tcp/%s/%d'", host, port)
			deadline := time.Now().Add(timeout)
			var last string
			for {
				holders, err := c.VIPHolders(ctx)
				switch {
				case err != nil:
					last = err.Error()
				case len(holders) != 1:
					last = fmt.Sprintf("%d nodes hold %s: %v", len(holders), host, holders)
				default:
					ok := true
					for _, n := range c.Lab.LoadBalancers() {
						if _, err := c.run(ctx, n.Name, probe); err != nil {
							ok, last = false, fmt.Sprintf("%s holds the VIP but %s cannot reach %s:%d", holders[0], n.Name, host, port)
							break
						}
					}
					if ok {
						c.info("vip", "", "%s holds %s; %s:%d answers", holders[0], host, host, port)
						return nil
					}
				}
				if time.Now().After(deadline) {
					return fmt.Errorf("the VIP did not settle within %s: %s; see `lab logs` (keepalived) on the load-balancer nodes", timeout, last)
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(200 * time.Millisecond):
				}
			}
		},
		Describe: func(string) []string {
			return []string{"poll every load balancer until exactly one holds the VIP and the API port answers on it"}
		},
	}
}
