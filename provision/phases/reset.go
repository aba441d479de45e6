package phases

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/labctl/lab/provision/workflow"
	"github.com/labctl/lab/templates"
	"github.com/labctl/lab/templates/addons"
)

// labMarker is in the first lines of every file lab renders; reset removes
// such files and the audit looks for them.
const labMarker = "Rendered by lab"

// renderedPaths are the files lab renders onto nodes; reset removes each one
// that still carries lab's header (a file the user replaced stays).
var renderedPaths = []string{
	templates.HAProxyConfigPath, templates.KeepalivedConfigPath, templates.CheckScriptPath,
	templates.ContainerdConfigPath, templates.CrictlConfigPath, templates.SysctlPath, templates.ModulesPath,
	templates.NetworkUnitPath,
}

// wipedPaths are directories and files Kubernetes, the CNI and lab leave.
var wipedPaths = []string{
	"/etc/kubernetes", "/var/lib/etcd", "/var/lib/kubelet", "/etc/cni/net.d",
	"/opt/cni/bin/lab-node", "/var/lib/lab-node", "/usr/local/bin/lab-node", "/var/lib/cni", "/run/lab-node",
	"/sys/fs/bpf/lab",
	// Cilium's: its pins (tc/globals holds its maps), state and
	// runtime directories, CNI plugin and config, and the sysctl
	// overrides its agent's init container writes. The CNI directories
	// go whole above; these are named so that the audit names them.
	"/sys/fs/bpf/cilium", "/sys/fs/bpf/tc", "/var/run/cilium", "/run/cilium", "/var/lib/cilium",
	"/opt/cni/bin/cilium-cni", "/opt/cni/bin/cilium-mount", "/opt/cni/bin/cilium-sysctlfix",
	"/etc/cni/net.d/05-cilium.conflist", "/etc/sysctl.d/99-zzz-override_cilium.conf",
	// lab-node's kubeconfig holds a cluster credential: named on its
	// own so that the audit names it should it survive.
	templates.LabNodeUnitPath, templates.LabNodeConfPath, "/etc/lab",
	"/root/.kube/config",
	// local-path-provisioner's volumes, the add-on's directories.
	addons.LocalPathDir,
}

// resetScript undoes what lab up did on a node. It never fails half way:
// each step tolerates what is already gone, and the audit that follows is
// the judge. Its arguments: the CRI socket, lab's marker, containerd's
// config, the VIP ("" for none), the pod subnet (routes into it go), the
// rendered files, --, the wiped paths.
func resetScript(vip netip.Addr, cri, pods string) string {
	args := []string{cri, labMarker, templates.ContainerdConfigPath, vipArg(vip), pods}
	args = append(append(append(args, renderedPaths...), "--"), wipedPaths...)
	return script(resetCiliumSh+resetSh, args...)
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = shq(s)
	}
	return out
}

// vipArg is the VIP as reset.sh and audit.sh take it: "" for none.
func vipArg(vip netip.Addr) string {
	if !vip.IsValid() {
		return ""
	}
	return vip.String()
}

// auditScript prints one line per trace of Kubernetes, Cilium or lab left
// on a node, and nothing on a clean one. Its arguments: lab's marker, the
// VIP ("" for none), the pod subnet, the wiped paths, --, the rendered
// files.
func auditScript(vip netip.Addr, pods string) string {
	args := []string{labMarker, vipArg(vip), pods}
	args = append(append(append(args, wipedPaths...), "--"), renderedPaths...)
	return script(auditCiliumSh+auditSh, args...)
}

// podRange is where pod addresses come from (Cilium's cluster pool or
// podSubnet): routes into it go at reset.
func (r *Run) podRange() string {
	if p := r.Lab.PodRange(); p.IsValid() {
		return p.String()
	}
	return r.Lab.Kubernetes.PodSubnet
}

func (r *Run) vip() netip.Addr {
	a, _ := netip.ParseAddr(r.Lab.ControlPlane.VIP)
	return a
}

// Reset removes what lab up put on every node: kubeadm's cluster state,
// CNI configs and programs, eBPF pins, load-balancer configs and the VIP,
// Kubernetes' and Cilium's packet rules.
func (r *Run) Reset() workflow.Phase {
	return workflow.Phase{
		Name:  "reset",
		Title: "kubeadm reset; remove cluster state, CNI, load balancer, VIP and packet rules",
		Nodes: r.AllNodes,
		Run: func(ctx context.Context, node string) error {
			// The routes and dummy interfaces go by what the lab file
			// says the node was given, whatever is left of network.sh.
			// They go last: kubeadm reset may still talk to the
			// control planes through them.
			if _, err := r.run(ctx, node, resetScript(r.vip(), r.Lab.Kubernetes.CRISocket, r.podRange())); err != nil {
				return err
			}
			down := templates.RoutingDown(r.Lab, r.node(node))
			if r.Lab.BGP != nil && node == r.Lab.BGP.Router {
				down = frrStop() + down
			}
			_, err := r.run(ctx, node, down+"exit 0")
			return err
		},
		Describe: func(string) []string {
			return []string{"kubeadm reset -f", "stop kubelet, lab-node, keepalived, haproxy", "rm -rf " + strings.Join(wipedPaths, " "),
				"remove the files lab rendered (" + strings.Join(renderedPaths, ", ") + ")",
				"remove Cilium's tc/XDP programs, mounts, network namespaces, routing rules and tables, routes into " + r.podRange(),
				"remove the VIP, KUBE-*/CILIUM-* rules, IPVS services, lab's /etc/hosts block, lab's routes and router interfaces"}
		},
	}
}

// Audit fails listing every trace of Kubernetes or lab left on each node.
func (r *Run) Audit() workflow.Phase {
	return workflow.Phase{
		Name:  "audit",
		Title: "prove nothing is left",
		Nodes: r.AllNodes,
		Run: func(ctx context.Context, node string) error {
			audit := templates.RoutingAudit(r.Lab, r.node(node))
			if r.Lab.BGP != nil && node == r.Lab.BGP.Router {
				audit += "systemctl is-active --quiet frr.service && echo 'service frr is running'\n" +
					"grep -qs '" + labMarker + "' " + templates.FRRConfigPath + " && echo 'file " + templates.FRRConfigPath + "'\n"
			}
			out, err := r.run(ctx, node, audit+auditScript(r.vip(), r.podRange()))
			if err != nil {
				return err
			}
			if left := strings.TrimSpace(out); left != "" {
				return fmt.Errorf("left after reset: %s", strings.Join(strings.Split(left, "\n"), "; "))
			}
			return nil
		},
	}
}
