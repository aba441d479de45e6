// Package labfile owns the lab file: its versioned types, strict loading with
// line numbers, defaulting and validation. Everything else in lab reads a Lab
// that has been through Load, so it can rely on defaults being filled in and
// on the topology being consistent.
package labfile

import "net/netip"

// APIVersion and Kind identify the only lab file format understood today.
const (
	APIVersion = "lab/v1alpha1"
	Kind       = "Lab"
)

// Lab is the whole lab file.
type Lab struct {
	APIVersion   string       `yaml:"apiVersion"`
	Kind         string       `yaml:"kind"`
	Metadata     Metadata     `yaml:"metadata"`
	Provider     Provider     `yaml:"provider"`
	Networks     []Network    `yaml:"networks"`
	Kubernetes   Kubernetes   `yaml:"kubernetes"`
	ControlPlane ControlPlane `yaml:"controlPlane"`
	CNI          CNI          `yaml:"cni"`
	BGP          *BGP         `yaml:"bgp,omitempty"`
	Addons       []Addon      `yaml:"addons,omitempty"`
	SSH          SSH          `yaml:"ssh"`
	Nodes        []Node       `yaml:"nodes"`

	// Path is the local file the lab was loaded from ("" when parsed from
	// memory), for messages about the lab.
	Path string `yaml:"-"`
}

// Metadata names the lab. The name labels every resource lab creates for it
// (containers, VMs, state directory), so two labs never touch each other.
type Metadata struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description,omitempty"`
}

// Provider types.
const (
	ProviderVagrant = "vagrant"
	ProviderDocker  = "docker"
	ProviderStatic  = "static"
)

// ProviderTypes returns every provider type a lab file may name.
func ProviderTypes() []string {
	return []string{ProviderVagrant, ProviderDocker, ProviderStatic}
}

// Provider says where nodes come from.
type Provider struct {
	Type    string         `yaml:"type"`
	Vagrant *VagrantConfig `yaml:"vagrant,omitempty"`
	Docker  *DockerConfig  `yaml:"docker,omitempty"`
}

// VagrantConfig holds the VirtualBox settings of every VM. lab resolves them
// with the nodes' own into the VM list it hands its Vagrantfile (see
// provision/provider/vagrant). Per-node cpus and memory override CPUs and
// Memory.
type VagrantConfig struct {
	Box        string `yaml:"box"`
	BoxVersion string `yaml:"boxVersion,omitempty"`
	CPUs       int    `yaml:"cpus"`
	Memory     int    `yaml:"memory"`
	// Group is the VirtualBox group the VMs are filed under, e.g. /Cilium-Lab.
	Group       string `yaml:"group,omitempty"`
	LinkedClone *bool  `yaml:"linkedClone,omitempty"`
}

// LinkedCloneEnabled reports whether VMs are linked clones of the box (the
// default).
func (v VagrantConfig) LinkedCloneEnabled() bool { return v.LinkedClone == nil || *v.LinkedClone }

// DockerConfig describes container nodes.
type DockerConfig struct {
	// Image is the node image, built offline by `lab image build`.
	Image string `yaml:"image"`
}

// Network is one node network. Node addresses refer to it by name.
type Network struct {
	Name string `yaml:"name"`
	CIDR string `yaml:"cidr"`
	// Gateway is the router address on this network, if the lab has one.
	Gateway string `yaml:"gateway,omitempty"`

	prefix netip.Prefix
}

// Prefix is the parsed CIDR; valid after Load.
func (n Network) Prefix() netip.Prefix { return n.prefix }

// Kubernetes holds the cluster settings handed to kubeadm.
type Kubernetes struct {
	// Version is a Kubernetes release such as v1.34.12 (a leading v is added).
	Version       string `yaml:"version"`
	PodSubnet     string `yaml:"podSubnet"`
	ServiceSubnet string `yaml:"serviceSubnet"`
	DNSDomain     string `yaml:"dnsDomain"`
	// KubeProxy runs kube-proxy; turn it off when the CNI replaces it.
	KubeProxy *bool `yaml:"kubeProxy,omitempty"`
	// NodeNetwork names the network whose address becomes each node's
	// kubelet node-ip and apiserver advertise address. Default: the first.
	NodeNetwork string `yaml:"nodeNetwork,omitempty"`
	// ImageRepository overrides registry.k8s.io.
	ImageRepository string `yaml:"imageRepository,omitempty"`
	// CRISocket is the container runtime endpoint on every node.
	CRISocket string `yaml:"criSocket,omitempty"`
	// Patches are kubeadm patches applied to control-plane components.
	Patches []Patch `yaml:"patches,omitempty"`
	// Artifacts says where Kubernetes binaries and images come from:
	// packages (the distribution's and pkgs.k8s.io's repositories, on each
	// node), release (official downloads gathered once on the machine that
	// runs lab) or build (built from source at the pinned version, for
	// machines with no registry).
	Artifacts string `yaml:"artifacts,omitempty"`
	// Release says where the release source downloads from: mirrors laid
	// out as the official sites are, for sites that keep their own.
	Release *Release `yaml:"release,omitempty"`
}

// Release points the release artifact source at its download sites. The
// images come from ImageRepository.
type Release struct {
	// URL serves <version>/bin/linux/<arch>/kubeadm, kubelet and kubectl,
	// each with a .sha256 beside it. Default: https://dl.k8s.io/release.
	URL string `yaml:"url,omitempty"`
	// CNIPluginsURL serves
	// <version>/cni-plugins-linux-<arch>-<version>.tgz and its .sha256.
	// Default: the containernetworking/plugins GitHub releases.
	CNIPluginsURL string `yaml:"cniPluginsURL,omitempty"`
}

// Artifact sources.
const (
	ArtifactsPackages = "packages"
	ArtifactsRelease  = "release"
	ArtifactsBuild    = "build"
)

// KubeProxyEnabled reports whether kube-proxy runs (the default).
func (k Kubernetes) KubeProxyEnabled() bool { return k.KubeProxy == nil || *k.KubeProxy }

// Patch is one kubeadm patch (see `kubeadm init --patches`).
type Patch struct {
	// Target is etcd, kube-apiserver, kube-controller-manager,
	// kube-scheduler, kubeletconfiguration or corednsdeployment.
	Target string `yaml:"target"`
	// Type is strategic (default), merge or json.
	Type string `yaml:"type,omitempty"`
	// Patch is the patch body as YAML.
	Patch string `yaml:"patch"`
}

// Control-plane endpoint modes.
const (
	EndpointVIP      = "vip"
	EndpointExternal = "external"
	EndpointSingle   = "single"
)

// ControlPlane describes how clients reach the Kubernetes API.
type ControlPlane struct {
	// Mode is vip (Keepalived + HAProxy), external (a load balancer the user
	// runs) or single (the first control plane, no HA).
	Mode string `yaml:"mode"`
	// VIP is the virtual address in vip mode.
	VIP string `yaml:"vip,omitempty"`
	// Address is the user's endpoint (host name or IP) in external mode.
	Address string `yaml:"address,omitempty"`
	// APIPort is the port every kube-apiserver binds.
	APIPort int `yaml:"apiPort"`
	// LBPort is the port clients use on the VIP or external address.
	LBPort int `yaml:"lbPort"`
	// VRRP tunes Keepalived in vip mode.
	VRRP VRRP `yaml:"vrrp"`
}

// VRRP tunes Keepalived.
type VRRP struct {
	// RouterID is the VRRP virtual router id (1-255), unique per L2 segment.
	RouterID int `yaml:"routerID"`
	// AdvertInterval is the advertisement interval in seconds (VRRPv3
	// accepts hundredths). Smaller fails over faster.
	AdvertInterval float64 `yaml:"advertInterval"`
	// Preempt lets a returning higher-priority node take the VIP back. Off by
	// default: a flap back is a second outage for nothing.
	Preempt bool `yaml:"preempt"`
	// Unicast sends adverts to the peers' addresses instead of multicast
	// (default true: works on every network, including cloud and Docker).
	Unicast *bool `yaml:"unicast,omitempty"`
}

// UnicastEnabled reports whether keepalived uses unicast peers (the default).
func (v VRRP) UnicastEnabled() bool { return v.Unicast == nil || *v.Unicast }

// CNI types.
const (
	CNIBuiltin = "builtin"
	CNICilium  = "cilium"
	CNINone    = "none"
)

// CNI chooses the pod network.
type CNI struct {
	Type   string        `yaml:"type"`
	Cilium *CiliumConfig `yaml:"cilium,omitempty"`
}

// CiliumConfig installs Cilium through its Helm chart.
type CiliumConfig struct {
	Version string `yaml:"version"`
	// Values are merged over the values lab derives from the lab file.
	Values map[string]any `yaml:"values,omitempty"`
}

// Known-hosts policies.
const (
	KnownHostsAcceptNew = "accept-new"
	KnownHostsStrict    = "strict"
	KnownHostsPinned    = "pinned"
)

// SSH says how lab reaches nodes.
type SSH struct {
	User string `yaml:"user"`
	Port int    `yaml:"port"`
	// KeyFiles are private keys tried in order (~ is expanded).
	KeyFiles []string `yaml:"keyFiles,omitempty"`
	// Agent uses the ssh-agent at SSH_AUTH_SOCK as well.
	Agent *bool `yaml:"agent,omitempty"`
	// KnownHosts is the host-key policy: accept-new (trust on first use into
	// the lab's own known_hosts), strict (only keys already known) or pinned
	// (only keys the provider read out of band).
	KnownHosts string `yaml:"knownHosts"`
	// Bastions are jump hosts, outermost first (like ProxyJump a,b).
	Bastions []Bastion `yaml:"bastions,omitempty"`
}

// AgentEnabled reports whether the ssh-agent is used (the default).
func (s SSH) AgentEnabled() bool { return s.Agent == nil || *s.Agent }

// Bastion is one jump host.
type Bastion struct {
	Host string `yaml:"host"`
	Port int    `yaml:"port,omitempty"`
	User string `yaml:"user,omitempty"`
}

// Node roles.
const (
	RoleControlPlane = "control-plane"
	RoleWorker       = "worker"
	RoleLoadBalancer = "loadbalancer"
	RoleRouter       = "router"
	RoleClient       = "client"
)

// Node is one machine of the lab.
type Node struct {
	Name  string   `yaml:"name"`
	Roles []string `yaml:"roles"`
	// Addresses maps network names to this node's address on that network.
	Addresses map[string]string `yaml:"addresses"`
	// CPUs and Memory (MiB) size VM nodes; they default to the provider's.
	CPUs   int               `yaml:"cpus,omitempty"`
	Memory int               `yaml:"memory,omitempty"`
	Labels map[string]string `yaml:"labels,omitempty"`
	Taints []Taint           `yaml:"taints,omitempty"`
	// SSH overrides where lab connects for this node (static hosts behind
	// NAT, port forwards). Default: the node-network address, ssh.port.
	SSH *NodeSSH `yaml:"ssh,omitempty"`
	// Router configures a node with the router role (see RouterConfig).
	Router *RouterConfig `yaml:"router,omitempty"`
}

// NodeSSH overrides the connection target of one node.
type NodeSSH struct {
	Host string `yaml:"host,omitempty"`
	Port int    `yaml:"port,omitempty"`
	User string `yaml:"user,omitempty"`
}

// Taint is a Kubernetes node taint.
type Taint struct {
	Key    string `yaml:"key"`
	Value  string `yaml:"value,omitempty"`
	Effect string `yaml:"effect"`
}

// HasRole reports whether the node has role r.
func (n Node) HasRole(r string) bool {
	for _, have := range n.Roles {
		if have == r {
			return true
		}
	}
	return false
}
