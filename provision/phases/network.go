package phases

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/labctl/lab/provision/labfile"
	"github.com/labctl/lab/provision/workflow"
	"github.com/labctl/lab/templates"
	"github.com/labctl/lab/templates/nodefiles"
)

// networkCheck is the command that succeeds when a node has every route
// and interface network.sh gives it.
const networkCheck = templates.NetworkScriptPath + " check >/dev/null"

// Network gives routers their forwarding and the networks behind them
// (dummy interfaces), and every node its routes via the routers, through
// network.sh and a unit that runs it at every boot. Nodes of a lab
// without routers get nothing.
func (r *Run) Network() workflow.Phase {
	return workflow.Phase{
		Name:  nodefiles.Network,
		Needs: needsFacts,
		Title: "routers forward; routes to other networks via the routers",
		Nodes: r.routedNodes,
		Done: func(ctx context.Context, node string) (bool, error) {
			files, err := r.files(node, nodefiles.Network)
			if err != nil {
				return false, err
			}
			return r.inPlace(ctx, node, files, networkCheck)
		},
		Run: func(ctx context.Context, node string) error {
			files, err := r.files(node, nodefiles.Network)
			if err != nil {
				return err
			}
			_, err = r.install(ctx, node, files,
				"systemctl daemon-reload && systemctl enable --quiet lab-network.service",
				// Restarting the oneshot runs network.sh up; its check
				// names what is still missing.
				"systemctl restart lab-network.service || true; "+templates.NetworkScriptPath+" check >&2")
			return err
		},
		Describe: func(node string) []string {
			rt := templates.RoutingFor(r.Lab, r.node(node))
			var lines []string
			if rt.Forward {
				lines = append(lines, "forward IPv4")
			}
			for _, d := range rt.Dummies {
				lines = append(lines, fmt.Sprintf("dummy interface %s with %s", d.Name, d.Address))
			}
			for _, rr := range rt.Routes {
				lines = append(lines, fmt.Sprintf("route %s via %s", rr.To, rr.Via))
			}
			if rt.PodRoutes {
				lines = append(lines, "routes to every node's pod CIDR (the pod-routes phase, once the nodes have them)")
			}
			return append(lines, "enable lab-network.service, which applies them at every boot")
		},
	}
}

// routedNodes are the nodes whose routing is not empty, in file order.
func (r *Run) routedNodes() []string {
	var out []string
	for i := range r.Lab.Nodes {
		if !templates.RoutingFor(r.Lab, &r.Lab.Nodes[i]).Empty() {
			out = append(out, r.Lab.Nodes[i].Name)
		}
	}
	return out
}

// podRouters are the routers that carry the pods' routes.
func (r *Run) podRouters() []string {
	var out []string
	for _, n := range r.Lab.Routers() {
		if n.Router != nil && n.Router.PodRoutes {
			out = append(out, n.Name)
		}
	}
	return out
}

// PodRoutes gives each router with podRoutes a route to every Kubernetes
// node's pod CIDR via that node, once the cluster has handed the CIDRs
// out (kube-controller-manager's, or Cilium's operator's with a cluster
// pool), so pods on nodes in different networks reach each other.
func (r *Run) PodRoutes(timeout time.Duration) workflow.Phase {
	return workflow.Phase{
		Name:  "pod-routes",
		Needs: needsFacts,
		Title: "routers route each node's pod CIDR",
		Nodes: r.podRouters,
		Done: func(ctx context.Context, node string) (bool, error) {
			routes, err := r.podRoutesOf(ctx, node, 0)
			if err != nil {
				return false, nil
			}
			file := templates.File{Path: templates.PodRoutesPath, Mode: 0o644, Content: templates.PodRoutesFile(routes)}
			return r.inPlace(ctx, node, []templates.File{file}, networkCheck)
		},
		Run: func(ctx context.Context, node string) error {
			routes, err := r.podRoutesOf(ctx, node, timeout)
			if err != nil {
				return err
			}
			file := templates.File{Path: templates.PodRoutesPath, Mode: 0o644, Content: templates.PodRoutesFile(routes)}
			_, err = r.install(ctx, node, []templates.File{file}, templates.NetworkScriptPath+" up && "+templates.NetworkScriptPath+" check >&2")
			return err
		},
		Describe: func(string) []string {
			return []string{"wait until every Kubernetes node has a pod CIDR", "write " + templates.PodRoutesPath + " and route each CIDR via its node"}
		},
	}
}

// podRoutesOf asks the cluster for every Kubernetes node's pod CIDRs,
// waiting up to timeout until each has one, and returns router's routes
// to them.
func (r *Run) podRoutesOf(ctx context.Context, router string, timeout time.Duration) ([]templates.Route, error) {
	query := kubectl + `get nodes -o jsonpath='{range .items[*]}{.metadata.name}{" "}{.spec.podCIDRs[*]}{"\n"}{end}'`
	if mode, _ := r.Lab.CNI.Cilium.Value("ipam.mode"); r.Lab.CNI.Type == labfile.CNICilium && mode != nil && mode != "kubernetes" {
		query = kubectl + `get ciliumnodes -o jsonpath='{range .items[*]}{.metadata.name}{" "}{.spec.ipam.podCIDRs[*]}{"\n"}{end}'`
	}
	rt := r.node(router)
	deadline := time.Now().Add(timeout)
	for {
		out, err := r.run(ctx, r.firstControlPlane(), query)
		var missing []string
		var routes []templates.Route
		if err == nil {
			cidrs := map[string][]string{}
			for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
				if f := strings.Fields(line); len(f) > 1 {
					cidrs[f[0]] = f[1:]
				}
			}
			for _, n := range r.Lab.KubernetesNodes() {
				via, ok := r.Lab.AddressFacing(rt, n)
				if !ok {
					return nil, fmt.Errorf("router %s shares no network with node %s: it cannot route its pods", router, n.Name)
				}
				if len(cidrs[n.Name]) == 0 {
					missing = append(missing, n.Name)
					continue
				}
				for _, c := range cidrs[n.Name] {
					p, perr := netip.ParsePrefix(c)
					if perr != nil || !p.Addr().Is4() {
						continue
					}
					routes = append(routes, templates.Route{To: p.Masked(), Via: via})
				}
			}
			if len(missing) == 0 {
				sort.Slice(routes, func(i, j int) bool { return routes[i].To.String() < routes[j].To.String() })
				return routes, nil
			}
			err = fmt.Errorf("no pod CIDR yet for %s", strings.Join(missing, ", "))
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the nodes' pod CIDRs: %w", err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}
