package phases

import (
	"context"
	"path"

	"github.com/labctl/lab/provision/workflow"
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
func (r *Run) LoadBalancer() workflow.Phase {
	return workflow.Phase{
		Name:  nodefiles.LoadBalancer,
		Needs: needsFacts,
		Title: "HAProxy + Keepalived: render, check on the node, install, reload",
		Nodes: func() []string { return names(r.Lab.LoadBalancers()) },
		Done: func(ctx context.Context, node string) (bool, error) {
			files, err := r.files(node, nodefiles.LoadBalancer)
			if err != nil {
				return false, err
			}
			return r.inPlace(ctx, node, files, freshCheck(freshCall("haproxy", templates.HAProxyConfigPath), freshCall("keepalived", templates.KeepalivedConfigPath)))
		},
		Run: func(ctx context.Context, node string) error {
			files, err := r.files(node, nodefiles.LoadBalancer)
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
			_, err = r.install(ctx, node, staged, installLBScript())
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
