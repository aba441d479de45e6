package phases

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/labctl/lab/provision/workflow"
)

// VIPHolders asks every load-balancer node whether it holds the VIP.
func (r *Run) VIPHolders(ctx context.Context) (holders []string, err error) {
	vip := r.Lab.ControlPlane.VIP
	for _, n := range r.Lab.LoadBalancers() {
		out, rerr := r.run(ctx, n.Name, ipv4AddrsSh)
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
func (r *Run) VIP(timeout time.Duration) workflow.Phase {
	return workflow.Phase{
		Name:  "vip",
		Title: "wait for exactly one VIP holder and " + r.Lab.EndpointString() + " to answer",
		Order: workflow.Local,
		Nodes: func() []string { return names(r.Lab.LoadBalancers()) },
		Run: func(ctx context.Context, _ string) error {
			if len(r.Lab.LoadBalancers()) == 0 {
				return nil
			}
			host, port := r.Lab.Endpoint()
			probe := fmt.Sprintf("timeout 2 bash -c 'exec 3<>/dev/tcp/%s/%d'", host, port)
			deadline := time.Now().Add(timeout)
			var last string
			for {
				holders, err := r.VIPHolders(ctx)
				switch {
				case err != nil:
					last = err.Error()
				case len(holders) != 1:
					last = fmt.Sprintf("%d nodes hold %s: %v", len(holders), host, holders)
				default:
					ok := true
					for _, n := range r.Lab.LoadBalancers() {
						if _, err := r.run(ctx, n.Name, probe); err != nil {
							ok, last = false, fmt.Sprintf("%s holds the VIP but %s cannot reach %s:%d", holders[0], n.Name, host, port)
							break
						}
					}
					if ok {
						r.info("vip", "", "%s holds %s; %s:%d answers", holders[0], host, host, port)
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
