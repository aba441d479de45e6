// Package kubeadm renders the kubeadm configuration files each node of a lab
// receives: InitConfiguration + ClusterConfiguration (+ KubeletConfiguration)
// for the first control plane, JoinConfiguration for every other node, and
// the kubeadm patch files the lab asks for.
//
// The configurations are built from kubeadm's own v1beta4 Go types rather than
// text templates, and every rendering is decoded again through kubeadm's
// scheme (its defaulting and conversion) and judged by kubeadm's own
// validation before it is returned. A configuration kubeadm would refuse on
// the node is refused here, with kubeadm's own field messages, before lab
// touches any machine.
//
// Only kubeadm's apis, scheme, validation and the packages they already link
// are imported: kubeadm's util/config tree would double the size of lab.
package kubeadm

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kubeletapis "k8s.io/kubelet/pkg/apis"
	bootstraptokenv1 "k8s.io/kubernetes/cmd/kubeadm/app/apis/bootstraptoken/v1"
	"k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm/scheme"
	"k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm/v1beta4"
	kubeadmconstants "k8s.io/kubernetes/cmd/kubeadm/app/constants"
	kubeadmutil "k8s.io/kubernetes/cmd/kubeadm/app/util"
	"sigs.k8s.io/yaml"

	"github.com/labctl/lab/provision/labfile"
	"github.com/labctl/lab/templates"
)

// Where a node keeps what this package renders.
const (
	// Dir holds every kubeadm file lab writes on a node.
	Dir = "/etc/lab/kubeadm"
	// InitPath is the first control plane's `kubeadm init --config`.
	InitPath = Dir + "/init.yaml"
	// JoinPath is every other node's `kubeadm join --config`.
	JoinPath = Dir + "/join.yaml"
	// PatchesDir is kubeadm's patches.directory.
	PatchesDir = Dir + "/patches"
)

// TokenTTL is how long the bootstrap token lives. It only has to outlast
// `lab up`; a token that never expires (ttl 0) would be a standing
// credential to join the cluster.
const TokenTTL = 2 * time.Hour

// FileMode is the mode of every rendered file: the configurations hold the
// bootstrap token and the certificate key.
const FileMode fs.FileMode = 0o600

// Init renders the first control plane's kubeadm init configuration:
// InitConfiguration, ClusterConfiguration and KubeletConfiguration. kubeadm's
// defaulting and validation have accepted it when the error is nil.
func Init(l *labfile.Lab, n *labfile.Node, f templates.Facts, s Secrets) ([]byte, error) {
	if err := checkInitNode(l, n); err != nil {
		return nil, err
	}
	if err := s.check(false); err != nil {
		return nil, err
	}
	patches := patchesFor(l, n)
	initCfg, clusterCfg, err := buildInit(l, n, s, len(patches) > 0)
	if err != nil {
		return nil, err
	}
	docs := []any{initCfg, clusterCfg, kubeletConfiguration(f)}
	if kp := kubeProxyConfiguration(l, f); kp != nil {
		docs = append(docs, kp)
	}
	data, err := encode(docs...)
	if err != nil {
		return nil, fmt.Errorf("encode init configuration: %w", err)
	}
	if err := validateInit(data); err != nil {
		return nil, fmt.Errorf("kubeadm rejects %s: %s", InitPath, redact(err.Error(), s))
	}
	return data, nil
}

// Join renders the kubeadm join configuration of node n: a control-plane
// join (with its own API endpoint and the certificate key that fetches the
// shared certificates) or a worker join, by the node's roles.
func Join(l *labfile.Lab, n *labfile.Node, s Secrets) ([]byte, error) {
	if err := checkJoinNode(l, n); err != nil {
		return nil, err
	}
	if err := s.check(true); err != nil {
		return nil, err
	}
	patches := patchesFor(l, n)
	joinCfg, err := buildJoin(l, n, s, len(patches) > 0)
	if err != nil {
		return nil, err
	}
	data, err := encode(joinCfg)
	if err != nil {
		return nil, fmt.Errorf("encode join configuration: %w", err)
	}
	if err := validateJoin(data); err != nil {
		return nil, fmt.Errorf("kubeadm rejects %s: %s", JoinPath, redact(err.Error(), s))
	}
	return data, nil
}

// Files returns every kubeadm file node n receives, sorted by path: its init
// or join configuration and its patch files. Nodes that are not part of the
// Kubernetes cluster receive nothing.
func Files(l *labfile.Lab, n *labfile.Node, f templates.Facts, s Secrets) ([]templates.File, error) {
	if !n.InCluster() {
		return nil, nil
	}
	var files []templates.File
	if l.IsFirstControlPlane(n) {
		data, err := Init(l, n, f, s)
		if err != nil {
			return nil, err
		}
		files = append(files, templates.File{Path: InitPath, Mode: FileMode, Content: data})
	} else {
		data, err := Join(l, n, s)
		if err != nil {
			return nil, err
		}
		files = append(files, templates.File{Path: JoinPath, Mode: FileMode, Content: data})
	}
	files = append(files, patchesFor(l, n)...)
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	return files, nil
}

// InitArgs are the arguments of the first control plane's `kubeadm init`.
// With more than one control plane the certificates are uploaded (encrypted
// with the certificate key) so that the others can fetch them when they join.
func InitArgs(l *labfile.Lab) []string {
	args := []string{"init", "--config", InitPath}
	if len(l.ControlPlanes()) > 1 {
		args = append(args, "--upload-certs")
	}
	return args
}

// JoinArgs are the arguments of `kubeadm join` on every other node.
func JoinArgs() []string { return []string{"join", "--config", JoinPath} }

func checkInitNode(l *labfile.Lab, n *labfile.Node) error {
	if !l.IsFirstControlPlane(n) {
		return fmt.Errorf("only the first control plane (%s) runs kubeadm init", firstControlPlane(l))
	}
	return checkNodeIP(l, n)
}

func checkJoinNode(l *labfile.Lab, n *labfile.Node) error {
	switch {
	case !n.InCluster():
		return fmt.Errorf("has neither the control-plane nor the worker role, so it does not join the cluster")
	case l.IsFirstControlPlane(n):
		return errors.New("is the first control plane: it runs kubeadm init, not join")
	case len(l.ControlPlanes()) == 0:
		return errors.New("the lab has no control plane to join")
	}
	return checkNodeIP(l, n)
}

func firstControlPlane(l *labfile.Lab) string {
	if cps := l.ControlPlanes(); len(cps) > 0 {
		return cps[0].Name
	}
	return "none"
}

func checkNodeIP(l *labfile.Lab, n *labfile.Node) error {
	if !l.NodeIP(n).IsValid() {
		return fmt.Errorf("no address on the node network %q", l.Kubernetes.NodeNetwork)
	}
	return nil
}

// buildInit builds the versioned init and cluster configurations.
func buildInit(l *labfile.Lab, n *labfile.Node, s Secrets, patches bool) (*v1beta4.InitConfiguration, *v1beta4.ClusterConfiguration, error) {
	token, err := bootstraptokenv1.NewBootstrapTokenString(s.Token)
	if err != nil {
		// Never wrap err: its text holds the token.
		return nil, nil, errBadToken
	}
	nodeReg, err := nodeRegistration(l, n)
	if err != nil {
		return nil, nil, err
	}
	initCfg := &v1beta4.InitConfiguration{
		TypeMeta: metav1.TypeMeta{APIVersion: v1beta4.SchemeGroupVersion.String(), Kind: kubeadmconstants.InitConfigurationKind},
		BootstrapTokens: []bootstraptokenv1.BootstrapToken{{
			Token:       token,
			Description: "lab: joins the lab's nodes while lab up runs",
			TTL:         &metav1.Duration{Duration: TokenTTL},
			Usages:      []string{"signing", "authentication"},
			Groups:      []string{kubeadmconstants.NodeBootstrapTokenAuthGroup},
		}},
		NodeRegistration: nodeReg,
		LocalAPIEndpoint: localAPIEndpoint(l, n),
	}
	if len(l.ControlPlanes()) > 1 {
		initCfg.CertificateKey = s.CertificateKey
	}
	if !l.Kubernetes.KubeProxyEnabled() {
		initCfg.SkipPhases = []string{"addon/kube-proxy"}
	}
	if patches {
		initCfg.Patches = &v1beta4.Patches{Directory: PatchesDir}
	}

	k := l.Kubernetes
	clusterCfg := &v1beta4.ClusterConfiguration{
		TypeMeta:             metav1.TypeMeta{APIVersion: v1beta4.SchemeGroupVersion.String(), Kind: kubeadmconstants.ClusterConfigurationKind},
		ClusterName:          l.Metadata.Name,
		KubernetesVersion:    k.Version,
		ControlPlaneEndpoint: l.EndpointString(),
		ImageRepository:      k.ImageRepository,
		Networking: v1beta4.Networking{
			PodSubnet:     k.PodSubnet,
			ServiceSubnet: k.ServiceSubnet,
			DNSDomain:     k.DNSDomain,
		},
		APIServer: v1beta4.APIServer{CertSANs: certSANs(l)},
		// Recorded in the cluster so that `kubeadm upgrade` does not bring
		// kube-proxy back; init also skips the phase (see SkipPhases).
		Proxy: v1beta4.Proxy{Disabled: !k.KubeProxyEnabled()},
	}
	return initCfg, clusterCfg, nil
}

// buildJoin builds the versioned join configuration.
func buildJoin(l *labfile.Lab, n *labfile.Node, s Secrets, patches bool) (*v1beta4.JoinConfiguration, error) {
	nodeReg, err := nodeRegistration(l, n)
	if err != nil {
		return nil, err
	}
	cfg := &v1beta4.JoinConfiguration{
		TypeMeta:         metav1.TypeMeta{APIVersion: v1beta4.SchemeGroupVersion.String(), Kind: kubeadmconstants.JoinConfigurationKind},
		NodeRegistration: nodeReg,
		Discovery: v1beta4.Discovery{
			BootstrapToken: &v1beta4.BootstrapTokenDiscovery{
				Token:             s.Token,
				APIServerEndpoint: l.EndpointString(),
				// The CA is pinned: discovery never trusts whoever
				// answers at the endpoint.
				CACertHashes: slices.Clone(s.CACertHashes),
			},
		},
	}
	if n.HasRole(labfile.RoleControlPlane) {
		cfg.ControlPlane = &v1beta4.JoinControlPlane{
			LocalAPIEndpoint: localAPIEndpoint(l, n),
			CertificateKey:   s.CertificateKey,
		}
	}
	if patches {
		cfg.Patches = &v1beta4.Patches{Directory: PatchesDir}
	}
	return cfg, nil
}

// nodeRegistration registers the node under its lab name with the kubelet
// bound to its lab-network address. Without an explicit node-ip the kubelet
// takes the address of the default route, which on VirtualBox is the NAT
// address 10.0.2.15 that every VM shares.
func nodeRegistration(l *labfile.Lab, n *labfile.Node) (v1beta4.NodeRegistrationOptions, error) {
	args := []v1beta4.Arg{{Name: "node-ip", Value: l.NodeIP(n).String()}}
	if len(n.Labels) > 0 {
		keys := make([]string, 0, len(n.Labels))
		for k := range n.Labels {
			if restrictedLabel(k) {
				return v1beta4.NodeRegistrationOptions{}, fmt.Errorf(
					"label %q: the kubelet may not set labels in the kubernetes.io or k8s.io namespaces (except node.kubernetes.io, kubelet.kubernetes.io and the well-known ones) and would refuse to start; use another prefix", k)
			}
			keys = append(keys, k)
		}
		sort.Strings(keys)
		pairs := make([]string, len(keys))
		for i, k := range keys {
			pairs[i] = k + "=" + n.Labels[k]
		}
		args = append(args, v1beta4.Arg{Name: "node-labels", Value: strings.Join(pairs, ",")})
	}
	return v1beta4.NodeRegistrationOptions{
		Name:             n.Name,
		CRISocket:        l.Kubernetes.CRISocket,
		Taints:           taints(l, n),
		KubeletExtraArgs: args,
	}, nil
}

// restrictedLabel reports whether the kubelet refuses to set label key on
// its own node: keys in the kubernetes.io and k8s.io namespaces other than
// the kubelet's own and the well-known ones.
func restrictedLabel(key string) bool {
	ns, _, ok := strings.Cut(key, "/")
	if !ok {
		return false
	}
	for _, d := range []string{"kubernetes.io", "k8s.io"} {
		if ns == d || strings.HasSuffix(ns, "."+d) {
			return !kubeletapis.IsKubeletLabel(key)
		}
	}
	return false
}

// taints returns the node's taints, never nil: kubeadm reads a nil list on a
// control plane as "add the default control-plane taint". A control plane
// keeps that taint unless it is a worker too or the lab has no workers, in
// which case pods must be able to run on it.
func taints(l *labfile.Lab, n *labfile.Node) []corev1.Taint {
	out := []corev1.Taint{}
	if n.HasRole(labfile.RoleControlPlane) && !n.HasRole(labfile.RoleWorker) && len(l.Workers()) > 0 {
		out = append(out, kubeadmconstants.ControlPlaneTaint)
	}
	for _, t := range n.Taints {
		out = append(out, corev1.Taint{Key: t.Key, Value: t.Value, Effect: corev1.TaintEffect(t.Effect)})
	}
	return out
}

func localAPIEndpoint(l *labfile.Lab, n *labfile.Node) v1beta4.APIEndpoint {
	return v1beta4.APIEndpoint{
		AdvertiseAddress: l.NodeIP(n).String(),
		BindPort:         int32(l.ControlPlane.APIPort),
	}
}

// certSANs lists every name clients may use for the API server: the
// endpoint (VIP or external address), every control plane's own address
// (kubelets and kube-proxy on control planes may talk to their local one)
// and loopback.
func certSANs(l *labfile.Lab) []string {
	var sans []string
	add := func(s string) {
		s = strings.ToLower(s)
		if s != "" && !slices.Contains(sans, s) {
			sans = append(sans, s)
		}
	}
	host, _ := l.Endpoint()
	add(host)
	for _, cp := range l.ControlPlanes() {
		add(l.NodeIP(cp).String())
	}
	add("127.0.0.1")
	add("localhost")
	return sans
}

// kubeletConfiguration is the cluster-wide kubelet configuration kubeadm
// stores at init. Only what lab decides is written; kubeadm defaults the rest.
//
// Container nodes share the host's disk: the free space the kubelet sees is
// the host's, which the lab neither owns nor can free. With the kubelet's
// defaults a host disk past 85-90% full marks every node DiskPressure,
// evicts every pod and garbage-collects images an offline lab cannot pull
// again. So on container nodes disk-based eviction and image garbage
// collection are off, and only memory pressure evicts (kind does the same).
func kubeletConfiguration(f templates.Facts) map[string]any {
	cfg := map[string]any{
		"apiVersion": "kubelet.config.k8s.io/v1beta1",
		"kind":       "KubeletConfiguration",
		// The container runtime is configured with SystemdCgroup; both
		// must agree or pods fail to start.
		"cgroupDriver": kubeadmconstants.CgroupDriverSystemd,
	}
	if f.Container {
		// A partial evictionHard map replaces the kubelet's defaults
		// whole, so memory's default threshold is spelled out.
		cfg["evictionHard"] = map[string]string{
			"memory.available":   "100Mi",
			"nodefs.available":   "0%",
			"nodefs.inodesFree":  "0%",
			"imagefs.available":  "0%",
			"imagefs.inodesFree": "0%",
		}
		cfg["imageGCHighThresholdPercent"] = 100
	}
	return cfg
}

// kubeProxyConfiguration is kube-proxy's configuration where lab needs one:
// with the builtin datapath, traffic between pods on a node is redirected in
// eBPF and never enters conntrack, so replies from a Service's backend are
// only un-NATed if kube-proxy masquerades every Service connection.
//
// Container nodes share the host's connection-tracking table, whose size
// only the host may set: kube-proxy would stop with "open
// /proc/sys/net/netfilter/nf_conntrack_max: permission denied" (or, on a
// privileged node, resize the host's table). maxPerCore 0 leaves it be.
func kubeProxyConfiguration(l *labfile.Lab, f templates.Facts) map[string]any {
	if !l.Kubernetes.KubeProxyEnabled() {
		return nil
	}
	cfg := map[string]any{}
	if l.CNI.Type == labfile.CNIBuiltin {
		cfg["iptables"] = map[string]any{"masqueradeAll": true}
	}
	if f.Container {
		cfg["conntrack"] = map[string]any{"maxPerCore": 0}
	}
	if len(cfg) == 0 {
		return nil
	}
	cfg["apiVersion"] = "kubeproxy.config.k8s.io/v1alpha1"
	cfg["kind"] = "KubeProxyConfiguration"
	return cfg
}

// encode writes objects as one YAML stream. kubeadm objects go through
// kubeadm's codecs (so apiVersion and field names are exactly kubeadm's);
// plain maps are component configurations.
func encode(objs ...any) ([]byte, error) {
	var out bytes.Buffer
	for i, o := range objs {
		var data []byte
		var err error
		switch o := o.(type) {
		case runtime.Object:
			data, err = kubeadmutil.MarshalToYamlForCodecs(o, v1beta4.SchemeGroupVersion, scheme.Codecs)
		default:
			data, err = yaml.Marshal(o)
		}
		if err != nil {
			return nil, err
		}
		if i > 0 {
			out.WriteString("---\n")
		}
		out.Write(data)
	}
	return out.Bytes(), nil
}

// patchesFor returns the patch files node n receives. Control planes get
// every patch; other nodes only the kubelet configuration ones, the only
// target kubeadm join applies on a worker. Files are named the way kubeadm
// reads them, target[suffix][+patchtype].yaml, with the patch's position in
// the lab file as suffix so that kubeadm applies them in file order.
func patchesFor(l *labfile.Lab, n *labfile.Node) []templates.File {
	if !n.InCluster() {
		return nil
	}
	ps := l.Kubernetes.Patches
	width := max(2, len(strconv.Itoa(len(ps)-1)))
	var files []templates.File
	for i, p := range ps {
		if !n.HasRole(labfile.RoleControlPlane) && p.Target != "kubeletconfiguration" {
			continue
		}
		typ := p.Type
		if typ == "" {
			typ = "strategic"
		}
		body := p.Patch
		if !strings.HasSuffix(body, "\n") {
			body += "\n"
		}
		files = append(files, templates.File{
			Path:    fmt.Sprintf("%s/%s%0*d+%s.yaml", PatchesDir, p.Target, width, i, typ),
			Mode:    FileMode,
			Content: []byte(body),
		})
	}
	return files
}
