package phases

import (
	"context"
	"fmt"
	"strings"

	"github.com/labctl/lab/provision/workflow"
)

// Kubeconfig copies the admin kubeconfig (its server is the control-plane
// endpoint: the VIP in vip mode) into the lab's state directory, 0600.
func (r *Run) Kubeconfig() workflow.Phase {
	return workflow.Phase{
		Name:  "kubeconfig",
		Title: "write the admin kubeconfig, server https://" + r.Lab.EndpointString(),
		Order: workflow.Local,
		Run: func(ctx context.Context, _ string) error {
			out, err := r.run(ctx, r.firstControlPlane(), "cat "+adminConf)
			if err != nil {
				return err
			}
			if !strings.Contains(out, "server: https://"+r.Lab.EndpointString()) {
				return fmt.Errorf("%s on %s does not point at the endpoint %s", adminConf, r.firstControlPlane(), r.Lab.EndpointString())
			}
			if err := r.State.WriteFile("admin.conf", []byte(out)); err != nil {
				return err
			}
			r.info("kubeconfig", "", "wrote %s", r.State.Kubeconfig())
			return nil
		},
	}
}
