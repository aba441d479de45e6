package phases

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/labctl/lab/provision/labfile"
)

// CiliumAgent is one node's Cilium agent as `lab status` shows it.
type CiliumAgent struct {
	Node string `json:"node"`
	// Pod is the agent's pod, "" when the node has none.
	Pod      string `json:"pod,omitempty"`
	Ready    bool   `json:"ready"`
	Restarts int    `json:"restarts"`
	// Status is the first line of `cilium-dbg status --brief` in the
	// agent ("OK" when healthy), or why there is none.
	Status string `json:"status"`
}

// ciliumAgentTimeout bounds each agent's answer to cilium-dbg.
const ciliumAgentTimeout = 5 * time.Second

// CiliumAgents asks the cluster, from the first control plane, for every
// Cilium agent pod's readiness and restarts and, of each ready one,
// `cilium-dbg status --brief`; every Kubernetes node of the lab is listed,
// those without an agent pod too. It only reads.
func (r *Run) CiliumAgents(ctx context.Context) ([]CiliumAgent, error) {
	if r.Lab.CNI.Type != labfile.CNICilium {
		return nil, fmt.Errorf("lab %s: cni.type is %s, not cilium", r.Lab.Metadata.Name, r.Lab.CNI.Type)
	}
	first := r.firstControlPlane()
	out, err := r.run(ctx, first, script(ciliumAgentsSh, adminConf, strconv.Itoa(int(ciliumAgentTimeout.Seconds()))))
	if err != nil {
		return nil, fmt.Errorf("asking %s for the Cilium agents: %w", first, err)
	}
	return parseCiliumAgents(out, r.kubeNodes()), nil
}

// parseCiliumAgents reads cilium_agents.sh's lines ("node pod ready
// restarts status...") into one entry per node of nodes, in their order,
// then any agent on a node the lab does not name.
func parseCiliumAgents(out string, nodes []string) []CiliumAgent {
	byNode := map[string]CiliumAgent{}
	var others []CiliumAgent
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		a := CiliumAgent{Node: f[0], Pod: f[1], Ready: f[2] == "true", Status: strings.Join(f[4:], " ")}
		a.Restarts, _ = strconv.Atoi(f[3])
		if a.Node == "<none>" {
			a.Node = ""
			a.Status = "not scheduled"
		}
		if _, dup := byNode[a.Node]; dup || a.Node == "" {
			others = append(others, a)
			continue
		}
		byNode[a.Node] = a
	}
	var agents []CiliumAgent
	for _, n := range nodes {
		a, ok := byNode[n]
		if !ok {
			a = CiliumAgent{Node: n, Status: "no Cilium agent pod on this node"}
		}
		delete(byNode, n)
		agents = append(agents, a)
	}
	for _, n := range sorted(keys(byNode)) {
		agents = append(agents, byNode[n])
	}
	return append(agents, others...)
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
