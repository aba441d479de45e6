package phases

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/labctl/lab/provision/workflow"
	"github.com/labctl/lab/templates"
	"github.com/labctl/lab/templates/nodefiles"
)

// frrRunning is the check that FRR runs with bgpd on the router.
const frrRunning = "grep -q '^bgpd=yes' " + templates.FRRDaemonsPath + " && systemctl is-active --quiet frr.service && pgrep -x bgpd >/dev/null"

// frrStart turns bgpd on in FRR's daemons file and (re)starts FRR with
// lab's frr.conf; FRR must be installed (the node image has it; a VM's
// router gets Debian's or Ubuntu's package).
const frrStart = `set -e
if ! [ -f ` + templates.FRRDaemonsPath + ` ]; then
	command -v apt-get >/dev/null || { echo 'FRR is not installed on the router, and there is no apt-get to install it' >&2; exit 1; }
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q frr >/dev/null || { echo 'apt-get install frr failed: the router needs FRR for BGP' >&2; exit 1; }
fi
chown frr:frr ` + templates.FRRConfigPath + ` 2>/dev/null || true
sed -i 's/^bgpd=no$/bgpd=yes/' ` + templates.FRRDaemonsPath + `
systemctl enable --quiet frr.service
systemctl restart frr.service`

// BGP starts FRR with lab's configuration on the BGP router and applies
// Cilium's BGP resources from the first control plane, once Cilium runs.
func (r *Run) BGP() workflow.Phase {
	return workflow.Phase{
		Name:  nodefiles.BGP,
		Needs: needsFacts,
		Title: "FRR on the router; Cilium's BGP peers and advertisements",
		Nodes: r.bgpNodes,
		Done: func(ctx context.Context, node string) (bool, error) {
			files, err := r.files(node, nodefiles.BGP)
			if err != nil {
				return false, err
			}
			if r.Lab.BGP != nil && node == r.Lab.BGP.Router {
				return r.inPlace(ctx, node, files, frrRunning)
			}
			return r.inPlace(ctx, node, files, kubectl+"diff -f "+shq(templates.CiliumBGPPath)+" >/dev/null 2>&1")
		},
		Run: func(ctx context.Context, node string) error {
			files, err := r.files(node, nodefiles.BGP)
			if err != nil {
				return err
			}
			if node == r.Lab.BGP.Router {
				_, err = r.install(ctx, node, files, frrStart)
				return err
			}
			if _, err := r.install(ctx, node, files); err != nil {
				return err
			}
			// Cilium's operator registers the BGP resources' CRDs
			// when it starts, which may be a moment after the cni
			// phase.
			return r.retry(ctx, 2*time.Minute, func() error {
				_, err := r.run(ctx, node, kubectl+"apply -f "+shq(templates.CiliumBGPPath)+" >/dev/null")
				return err
			})
		},
		Describe: func(node string) []string {
			if node == r.Lab.BGP.Router {
				return []string{"write " + templates.FRRConfigPath + "; turn bgpd on in " + templates.FRRDaemonsPath + "; enable and restart frr"}
			}
			return []string{"kubectl apply -f " + templates.CiliumBGPPath + " (CiliumBGPClusterConfig, CiliumBGPPeerConfig, CiliumBGPAdvertisement)"}
		},
	}
}

// bgpNodes are the BGP router and the first control plane, in a lab with
// bgp.
func (r *Run) bgpNodes() []string {
	if r.Lab.BGP == nil {
		return nil
	}
	var out []string
	for _, n := range r.Lab.Nodes {
		if n.Name == r.Lab.BGP.Router || r.Lab.IsFirstControlPlane(&n) {
			out = append(out, n.Name)
		}
	}
	return out
}

// frrStop is reset's part on the BGP router: FRR stopped and disabled,
// bgpd off again, lab's frr.conf gone.
func frrStop() string {
	return strings.Join([]string{
		"systemctl disable --now --quiet frr.service 2>/dev/null",
		"sed -i 's/^bgpd=yes$/bgpd=no/' " + templates.FRRDaemonsPath + " 2>/dev/null",
		"grep -qs '" + labMarker + "' " + templates.FRRConfigPath + " && rm -f " + templates.FRRConfigPath,
		"true",
	}, "\n") + "\n"
}

// retry calls f until it succeeds or timeout passes, returning its last
// error.
func (r *Run) retry(ctx context.Context, timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s: %w", timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}
