package phases

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/labctl/lab/provision/workflow"
)

// Ready waits until every node of the lab is registered and Ready.
func (r *Run) Ready(timeout time.Duration) workflow.Phase {
	return workflow.Phase{
		Name:  "ready",
		Title: "wait until every node is Ready",
		Order: workflow.Serial,
		Nodes: func() []string { return []string{r.firstControlPlane()} },
		Run: func(ctx context.Context, node string) error {
			want := len(r.Lab.KubernetesNodes())
			deadline := time.Now().Add(timeout)
			var last string
			for {
				out, err := r.run(ctx, node, kubectl+`get nodes -o jsonpath='{range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}'`)
				if err == nil {
					ready, notReady := 0, []string{}
					for _, line := range strings.Fields(out) {
						name, st, _ := strings.Cut(line, "=")
						if st == "True" {
							ready++
						} else {
							notReady = append(notReady, name)
						}
					}
					if ready >= want {
						return nil
					}
					last = fmt.Sprintf("%d of %d nodes Ready (not ready: %s)", ready, want, strings.Join(notReady, ", "))
				} else {
					last = err.Error()
				}
				if time.Now().After(deadline) {
					return fmt.Errorf("nodes not Ready after %s: %s; `lab logs` collects the kubelet logs", timeout, last)
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(2 * time.Second):
				}
			}
		},
	}
}
