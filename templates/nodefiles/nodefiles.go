// Package nodefiles decides every file a node of a lab receives, grouped by
// the phase of `lab up` that installs it. `lab render` and `lab up` both ask
// it, so what render shows is what the nodes get: a phase installs exactly
// its group and nothing else, and no rendered file is left without a phase
// to install it.
//
// Some files carry values only known once earlier phases ran (the bootstrap
// token, the CA hash joins pin, lab-node's ServiceAccount token). `lab up`
// passes the real ones; `lab render` passes Placeholders, which are marked
// so that they cannot be mistaken for credentials.
//
// Programs (kubeadm, kubelet, lab-node, helm) are not rendered: they come
// from the artifact cache or are embedded in lab, and the phases that send
// them say so in `lab up --dry-run`.
package nodefiles

import (
	"fmt"
	"sort"
	"strings"

	"github.com/labctl/lab/provision/labfile"
	"github.com/labctl/lab/templates"
	"github.com/labctl/lab/templates/addons"
	"github.com/labctl/lab/templates/cilium"
	"github.com/labctl/lab/templates/kubeadm"
)

// The phases of `lab up` that install files, by name.
const (
	OS               = "os"
	Network          = "network"
	Packages         = "packages"
	LoadBalancer     = "loadbalancer"
	Kubernetes       = "kubernetes"
	Init             = "init"
	JoinControlPlane = "join-control-plane"
	JoinWorker       = "join-worker"
	CNI              = "cni"
	BGP              = "bgp"
	Addons           = "addons"
)

// Phases are the phases that install files, in the order `lab up` runs
// them.
func Phases() []string {
	return []string{OS, Network, Packages, LoadBalancer, Kubernetes, Init, JoinControlPlane, JoinWorker, CNI, BGP, Addons}
}

// Inputs are what a node's files depend on besides the lab file.
type Inputs struct {
	// Facts are the node's interface and kind, from its provider until
	// the facts phase has read them on the node.
	Facts templates.Facts
	// Kubeadm are the credentials of the kubeadm configurations. Joins
	// also need the CA hash, known once init has run.
	Kubeadm kubeadm.Secrets
	// LabNode is lab-node's credential, known once the cluster runs.
	LabNode templates.LabNodeCredential
}

// Placeholder values `lab render` shows for what only `lab up` learns.
// Every one of them is on a line of its own in the files that carry it.
const (
	PlaceholderLabNodeToken = "PLACEHOLDER-lab-node-token-read-by-the-cni-phase"
	PlaceholderClusterCA    = "PLACEHOLDER-cluster-CA-known-after-kubeadm-init"
)

// Placeholders are the inputs of `lab render`: the given facts, and
// placeholder credentials of the right shape (kubeadm's validation accepts
// them) that are plainly not real.
func Placeholders(f templates.Facts) Inputs {
	return Inputs{
		Facts:   f,
		Kubeadm: kubeadm.Placeholders(),
		LabNode: templates.LabNodeCredential{Token: PlaceholderLabNodeToken, CAData: PlaceholderClusterCA},
	}
}

// IsPlaceholderLine reports whether a rendered line carries a placeholder,
// so that a comparison with a node's real file can pass over it.
func IsPlaceholderLine(line string) bool {
	p := kubeadm.Placeholders()
	for _, s := range append([]string{p.Token, p.CertificateKey, PlaceholderLabNodeToken, PlaceholderClusterCA}, p.CACertHashes...) {
		if strings.Contains(line, s) {
			return true
		}
	}
	return false
}

// Group is the files one phase installs on a node.
type Group struct {
	Phase string
	Files []templates.File
}

// For returns every file node n receives, grouped by the phase that
// installs it, in phase order; phases with nothing for n are left out.
// Errors name the node.
func For(l *labfile.Lab, n *labfile.Node, in Inputs) ([]Group, error) {
	var groups []Group
	for _, ph := range Phases() {
		files, err := ForPhase(l, n, ph, in)
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", n.Name, err)
		}
		if len(files) > 0 {
			groups = append(groups, Group{Phase: ph, Files: files})
		}
	}
	return groups, nil
}

// ForPhase returns the files phase installs on node n (none for a phase
// that installs nothing there). Errors do not name the node: the phase
// engine does.
func ForPhase(l *labfile.Lab, n *labfile.Node, phase string, in Inputs) ([]templates.File, error) {
	var (
		files []templates.File
		err   error
	)
	switch phase {
	case OS:
		files, err = osFiles(l, n)
	case Network:
		files, err = templates.NetworkFiles(l, n)
	case Packages:
		files, err = templates.RuntimeFiles(l, n, in.Facts)
	case LoadBalancer:
		files, err = templates.LoadBalancerFiles(l, n, in.Facts)
	case Kubernetes:
		if n.InCluster() && l.Kubernetes.Artifacts != labfile.ArtifactsPackages {
			files, err = templates.KubeletFiles()
		}
	case Init, JoinControlPlane, JoinWorker:
		if kubeadmPhase(l, n) == phase {
			files, err = kubeadm.Files(l, n, in.Facts, in.Kubeadm)
		}
	case CNI:
		files, err = cniFiles(l, n, in)
	case BGP:
		files, err = templates.BGPFiles(l, n)
	case Addons:
		files, err = addons.Files(l, n)
	default:
		return nil, fmt.Errorf("no phase %q installs files; the phases that do are %s", phase, strings.Join(Phases(), ", "))
	}
	if err != nil {
		return nil, fmt.Errorf("rendering the %s phase's files: %w", phase, err)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	return files, nil
}

func osFiles(l *labfile.Lab, n *labfile.Node) ([]templates.File, error) {
	files, err := templates.OSFiles(l, n)
	if err != nil {
		return nil, err
	}
	hosts, err := templates.HostsFile(l)
	if err != nil {
		return nil, err
	}
	return append(files, hosts), nil
}

// kubeadmPhase is the phase that runs kubeadm on n: init on the first
// control plane, a control-plane join on the others, a worker join on the
// rest of the cluster, and none off it.
func kubeadmPhase(l *labfile.Lab, n *labfile.Node) string {
	switch {
	case !n.InCluster():
		return ""
	case l.IsFirstControlPlane(n):
		return Init
	case n.HasRole(labfile.RoleControlPlane):
		return JoinControlPlane
	}
	return JoinWorker
}

// cniFiles are the pod network's files: lab-node's unit and credential on
// every node of the cluster and its RBAC objects on the first control plane
// (builtin), or Cilium's chart values on the first control plane, which
// installs the chart (cilium).
func cniFiles(l *labfile.Lab, n *labfile.Node, in Inputs) ([]templates.File, error) {
	if !n.InCluster() {
		return nil, nil
	}
	switch l.CNI.Type {
	case labfile.CNIBuiltin:
		files, err := templates.LabNodeFiles(l, n, in.LabNode)
		if err != nil || !l.IsFirstControlPlane(n) {
			return files, err
		}
		rbac, err := templates.LabNodeRBACFile(l, n)
		return append(files, rbac), err
	case labfile.CNICilium:
		if !l.IsFirstControlPlane(n) {
			return nil, nil
		}
		values, err := cilium.ValuesYAML(l, in.Facts)
		if err != nil {
			return nil, err
		}
		return []templates.File{{Path: templates.CiliumValuesPath, Mode: 0o600, Content: values}}, nil
	}
	return nil, nil
}
