package phases

import (
	"context"
	"fmt"
	"strings"

	"github.com/labctl/lab/provision/labfile"
	"github.com/labctl/lab/provision/workflow"
	"github.com/labctl/lab/templates/nodefiles"
)

// debVersion is the pkgs.k8s.io package version of a release: v1.34.12 →
// 1.34.12-1.1.
func debVersion(v string) string { return strings.TrimPrefix(v, "v") + "-1.1" }

func minorOf(v string) string {
	parts := strings.SplitN(strings.TrimPrefix(v, "v"), ".", 3)
	if len(parts) < 2 {
		return v
	}
	return "v" + parts[0] + "." + parts[1]
}

// kubernetesScript installs kubeadm, kubelet and kubectl at the lab's
// version from the Kubernetes project's package repository and holds them.
func kubernetesScript(version string) string {
	return script(kubernetesSh, minorOf(version), debVersion(version))
}

// Kubernetes installs kubeadm, kubelet and kubectl at the lab's version
// where they are missing or at another version.
// With kubernetes.artifacts: build or release, everything is gathered on
// the machine that runs lab instead and pushed to the nodes (see
// kubernetesArtifacts).
func (r *Run) Kubernetes() workflow.Phase {
	if a := r.Lab.Kubernetes.Artifacts; a == labfile.ArtifactsBuild || a == labfile.ArtifactsRelease {
		return r.kubernetesArtifacts()
	}
	v := r.Lab.Kubernetes.Version
	return workflow.Phase{
		Name:  nodefiles.Kubernetes,
		Needs: needsFacts,
		Title: "kubeadm, kubelet, kubectl " + v,
		Nodes: r.kubeNodes,
		Done: func(ctx context.Context, node string) (bool, error) {
			out, err := r.run(ctx, node, versionsSh)
			if err != nil {
				return false, nil
			}
			f := strings.Fields(out)
			return len(f) == 4 && f[0] == v && f[2] == v && f[3] == v, nil
		},
		Run: func(ctx context.Context, node string) error {
			_, err := r.run(ctx, node, kubernetesScript(v))
			if err != nil {
				return fmt.Errorf("installing Kubernetes %s packages: %w", v, err)
			}
			return nil
		},
		Describe: func(string) []string {
			return []string{"add pkgs.k8s.io " + minorOf(v) + " and apt-get install kubelet kubeadm kubectl=" + debVersion(v) + "; hold them"}
		},
	}
}
