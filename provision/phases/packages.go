package phases

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/labctl/lab/provision/workflow"
	"github.com/labctl/lab/templates"
	"github.com/labctl/lab/templates/nodefiles"
)

// runtimePackages are what a node needs before Kubernetes: the container
// runtime on cluster nodes, HAProxy and Keepalived on load balancers. The
// keys are programs (checked with command -v); the values are the Debian
// and Ubuntu packages that provide them.
func (r *Run) runtimePackages(node string) map[string]string {
	n := r.node(node)
	want := map[string]string{}
	if n.InCluster() {
		for prog, pkg := range map[string]string{"containerd": "containerd", "runc": "runc", "conntrack": "conntrack", "socat": "socat", "iptables": "iptables"} {
			want[prog] = pkg
		}
	}
	if r.Lab.IsLoadBalancer(n) {
		want["haproxy"] = "haproxy"
		want["keepalived"] = "keepalived"
	}
	return want
}

// missingPrograms lists the programs of want the node lacks, sorted.
func missingPrograms(ctx context.Context, conn Conn, want map[string]string) ([]string, error) {
	if len(want) == 0 {
		return nil, nil
	}
	var progs []string
	for p := range want {
		progs = append(progs, p)
	}
	out, err := conn.Run(ctx, script(missingSh, sorted(progs)...))
	if err != nil {
		return nil, err
	}
	return strings.Fields(out), nil
}

// Packages installs the container runtime and load-balancer packages from
// the distribution's repositories where they are missing, and configures
// containerd. Nodes that already have them (container nodes built by
// `lab image build`) install nothing.
func (r *Run) Packages() workflow.Phase {
	return workflow.Phase{
		Name:  nodefiles.Packages,
		Needs: needsFacts,
		Title: "container runtime on cluster nodes, HAProxy + Keepalived on load balancers",
		Nodes: r.AllNodes,
		Done: func(ctx context.Context, node string) (bool, error) {
			conn, err := r.Conn(ctx, node)
			if err != nil {
				return false, err
			}
			missing, err := missingPrograms(ctx, conn, r.runtimePackages(node))
			if err != nil || len(missing) > 0 {
				return false, err
			}
			files, err := r.files(node, nodefiles.Packages)
			if err != nil {
				return false, err
			}
			if len(files) == 0 {
				return true, nil
			}
			return r.inPlace(ctx, node, files, freshCheck(freshCall("containerd", templates.ContainerdConfigPath)))
		},
		Run: func(ctx context.Context, node string) error {
			conn, err := r.Conn(ctx, node)
			if err != nil {
				return err
			}
			want := r.runtimePackages(node)
			missing, err := missingPrograms(ctx, conn, want)
			if err != nil {
				return err
			}
			if len(missing) > 0 {
				f, err := r.Facts(node)
				if err != nil {
					return err
				}
				var pkgs []string
				for _, p := range missing {
					pkgs = append(pkgs, want[p])
				}
				if f.OS != "debian" && f.OS != "ubuntu" {
					return fmt.Errorf("missing %s and lab installs packages only on Debian and Ubuntu (this is %s %s); install them and run lab up again",
						strings.Join(missing, ", "), f.OS, f.OSVersion)
				}
				r.info("packages", node, "installing %s", strings.Join(sorted(pkgs), " "))
				if _, err := conn.Run(ctx, script(aptInstallSh, sorted(pkgs)...)); err != nil {
					return fmt.Errorf("installing %s: %w", strings.Join(sorted(pkgs), " "), err)
				}
			}
			files, err := r.files(node, nodefiles.Packages)
			if err != nil || len(files) == 0 {
				return err
			}
			changed, err := conn.Upload(ctx, files)
			if err != nil {
				return err
			}
			_, err = conn.Run(ctx, restartContainerdScript(changed > 0))
			return err
		},
		Describe: func(node string) []string {
			var out []string
			if w := r.runtimePackages(node); len(w) > 0 {
				var ps []string
				for _, p := range w {
					ps = append(ps, p)
				}
				out = append(out, "apt-get install (where missing): "+strings.Join(sorted(ps), " "))
			}
			if r.node(node).InCluster() {
				out = append(out, "write "+templates.ContainerdConfigPath+", "+templates.CrictlConfigPath+"; restart containerd if they changed")
			}
			return out
		},
	}
}

// restartContainerdScript enables and starts containerd, and restarts it
// when its config changed or it runs an older one.
func restartContainerdScript(changed bool) string {
	arg := "same"
	if changed {
		arg = "changed"
	}
	return script(freshSh+restartContainerdSh, arg, templates.ContainerdConfigPath)
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}
