package templates

import (
	"errors"

	"github.com/labctl/lab/provision/labfile"
)

// Paths of the cluster's own files: the kubelet's units (when lab installs
// the programs itself), the builtin pod network's daemon, its credential
// and its RBAC objects, the managed block of /etc/hosts and Cilium's values.
const (
	KubeletUnitPath   = "/etc/systemd/system/kubelet.service"
	KubeletDropInPath = "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf"
	LabNodeUnitPath   = "/etc/systemd/system/lab-node.service"
	// LabNodeConfPath is lab-node's own kubeconfig: the ServiceAccount
	// kube-system/lab-node's token, never the kubelet's credentials.
	LabNodeConfPath = "/etc/lab/lab-node.conf"
	// LabNodeRBACPath holds lab-node's ServiceAccount, ClusterRole, binding
	// and token Secret; the first control plane applies it.
	LabNodeRBACPath = "/etc/lab/lab-node-rbac.yaml"
	// LabNodeTokenSecret is the Secret that carries lab-node's token.
	LabNodeTokenSecret = "lab-node-token"
	// HostsBlockPath is lab's block of /etc/hosts as a file of its own: the
	// os phase splices it into /etc/hosts between its BEGIN and END lines.
	HostsBlockPath   = "/etc/lab/hosts"
	CiliumValuesPath = "/etc/lab/cilium/values.yaml"
)

// HostsFile is lab's block of /etc/hosts: every node's name at its
// node-network address, between a BEGIN and an END line naming the lab.
func HostsFile(l *labfile.Lab) (File, error) {
	type host struct{ Address, Name string }
	data := struct {
		Lab   string
		Hosts []host
	}{Lab: l.Metadata.Name}
	for i := range l.Nodes {
		data.Hosts = append(data.Hosts, host{l.NodeIP(&l.Nodes[i]).String(), l.Nodes[i].Name})
	}
	return render(HostsBlockPath, 0o644, data)
}

// HostsMarkers are the first and last line of lab's block in /etc/hosts.
func HostsMarkers(l *labfile.Lab) (begin, end string) {
	return "# BEGIN lab " + l.Metadata.Name, "# END lab " + l.Metadata.Name
}

// KubeletFiles are the systemd unit and kubeadm drop-in Kubernetes' own
// packages install with the kubelet; lab writes them when it installs the
// programs itself (artifacts build or release).
func KubeletFiles() ([]File, error) {
	var files []File
	for _, p := range []string{KubeletUnitPath, KubeletDropInPath} {
		f, err := render(p, 0o644, nil)
		if err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	return files, nil
}

// LabNodeCredential is what lab-node's kubeconfig carries besides the
// server: the ServiceAccount's token and the cluster CA. Both are known
// only once the cluster runs.
type LabNodeCredential struct {
	Token string
	// CAData is the cluster CA certificate, PEM, base64-encoded: the form
	// kubeconfigs and the token Secret keep it in.
	CAData string
}

// LabNodeFiles are the builtin pod network's unit and kubeconfig (0600: it
// holds the token) on a node of the cluster.
func LabNodeFiles(l *labfile.Lab, n *labfile.Node, cred LabNodeCredential) ([]File, error) {
	unit, err := render(LabNodeUnitPath, 0o644, struct{ Node string }{n.Name})
	if err != nil {
		return nil, err
	}
	if cred.Token == "" || cred.CAData == "" {
		return nil, errors.New("lab-node's kubeconfig needs its token and the cluster CA")
	}
	conf, err := render(LabNodeConfPath, 0o600, struct{ Endpoint, CAData, Token string }{l.EndpointString(), cred.CAData, cred.Token})
	if err != nil {
		return nil, err
	}
	return []File{unit, conf}, nil
}

// LabNodeRBACFile is lab-node's identity on the cluster: a ServiceAccount
// that may read Node objects and nothing else (lab-node routes to the other
// nodes' pod CIDRs; since Kubernetes 1.34 a kubelet may read only its own
// Node, and lab-node must not borrow the kubelet's far broader powers).
// Applying it over a cluster set up by an older lab rewrites the binding's
// subjects, which removes the old grant to the group system:nodes.
//
// The token is a Secret of type kubernetes.io/service-account-token, not a
// TokenRequest: kube-controller-manager fills it in, it does not expire, so
// it survives reboots and needs no renewal by lab, and it is the same on
// every run, so a second lab up finds each node's kubeconfig current.
// Deleting the Secret revokes it; the next lab up makes a new one.
func LabNodeRBACFile(l *labfile.Lab, n *labfile.Node) (File, error) {
	return render(LabNodeRBACPath, 0o644, header(l, n))
}
