package labfile

import (
	"net/netip"
	"strings"
)

// Defaults that are worth knowing by name.
const (
	DefaultKubernetesVersion = "v1.34.12"
	DefaultPodSubnet         = "10.244.0.0/16"
	DefaultServiceSubnet     = "10.96.0.0/16"
	DefaultDNSDomain         = "cluster.local"
	DefaultCRISocket         = "unix:///run/containerd/containerd.sock"
	DefaultAPIPort           = 6443
	// DefaultSharedLBPort is HAProxy's port when it shares a node with a
	// kube-apiserver, which already holds 6443.
	DefaultSharedLBPort = 8443
	DefaultVRRPRouterID = 51
	// DefaultAdvertInterval is VRRPv3's advertisement interval: measured
	// here it moves the VIP in ~0.35 s after a crash with no false failover
	// under full CPU load (docs/ha.md).
	DefaultAdvertInterval = 0.1
	DefaultVagrantBox     = "bento/ubuntu-24.04"
	DefaultVagrantCPUs    = 2
	DefaultVagrantMemory  = 2048
	DefaultDockerImage    = "lab-node:bookworm"
	DefaultCiliumVersion  = "1.18.4"
)

// Default fills every field the user left out. It is idempotent and runs
// before validation, so validation sees the values lab will really use.
func Default(l *Lab) {
	if l.Provider.Type == "" {
		l.Provider.Type = ProviderDocker
	}
	switch l.Provider.Type {
	case ProviderVagrant:
		if l.Provider.Vagrant == nil {
			l.Provider.Vagrant = &VagrantConfig{}
		}
		v := l.Provider.Vagrant
		v.Box = or(v.Box, DefaultVagrantBox)
		if v.CPUs == 0 {
			v.CPUs = DefaultVagrantCPUs
		}
		if v.Memory == 0 {
			v.Memory = DefaultVagrantMemory
		}
		if v.LinkedClone == nil {
			t := true
			v.LinkedClone = &t
		}
		for i := range l.Nodes {
			if l.Nodes[i].CPUs == 0 {
				l.Nodes[i].CPUs = v.CPUs
			}
			if l.Nodes[i].Memory == 0 {
				l.Nodes[i].Memory = v.Memory
			}
		}
	case ProviderDocker:
		if l.Provider.Docker == nil {
			l.Provider.Docker = &DockerConfig{}
		}
		l.Provider.Docker.Image = or(l.Provider.Docker.Image, DefaultDockerImage)
	}
	for i := range l.Networks {
		if p, err := netip.ParsePrefix(l.Networks[i].CIDR); err == nil {
			l.Networks[i].prefix = p
		}
	}

	k := &l.Kubernetes
	k.Version = or(k.Version, DefaultKubernetesVersion)
	if k.Version != "" && !strings.HasPrefix(k.Version, "v") {
		k.Version = "v" + k.Version
	}
	k.PodSubnet = or(k.PodSubnet, DefaultPodSubnet)
	k.ServiceSubnet = or(k.ServiceSubnet, DefaultServiceSubnet)
	k.DNSDomain = or(k.DNSDomain, DefaultDNSDomain)
	k.CRISocket = or(k.CRISocket, DefaultCRISocket)
	k.Artifacts = or(k.Artifacts, ArtifactsPackages)
	if k.NodeNetwork == "" && len(l.Networks) > 0 {
		k.NodeNetwork = l.Networks[0].Name
	}
	for i := range k.Patches {
		k.Patches[i].Type = or(k.Patches[i].Type, "strategic")
	}

	cp := &l.ControlPlane
	if cp.Mode == "" {
		cp.Mode = EndpointSingle
		if len(l.ControlPlanes()) > 1 {
			cp.Mode = EndpointVIP
		}
	}
	if cp.APIPort == 0 {
		cp.APIPort = DefaultAPIPort
	}
	if cp.LBPort == 0 {
		switch {
		case cp.Mode == EndpointVIP && !l.DedicatedLoadBalancers():
			cp.LBPort = DefaultSharedLBPort
		case cp.Mode == EndpointSingle:
			cp.LBPort = cp.APIPort
		default:
			cp.LBPort = DefaultAPIPort
		}
	}
	if cp.VRRP.RouterID == 0 {
		cp.VRRP.RouterID = DefaultVRRPRouterID
	}
	if cp.VRRP.AdvertInterval == 0 {
		cp.VRRP.AdvertInterval = DefaultAdvertInterval
	}

	if l.CNI.Type == "" {
		l.CNI.Type = CNIBuiltin
	}
	if l.CNI.Type == CNICilium {
		if l.CNI.Cilium == nil {
			l.CNI.Cilium = &CiliumConfig{}
		}
		l.CNI.Cilium.Version = strings.TrimPrefix(or(l.CNI.Cilium.Version, DefaultCiliumVersion), "v")
	}

	defaultBGP(l)
	defaultAddons(l)

	s := &l.SSH
	s.User = or(s.User, "root")
	if s.Port == 0 {
		s.Port = 22
	}
	if s.KnownHosts == "" {
		s.KnownHosts = KnownHostsAcceptNew
		if l.Provider.Type == ProviderDocker {
			s.KnownHosts = KnownHostsPinned
		}
	}
	for i := range s.Bastions {
		if s.Bastions[i].Port == 0 {
			s.Bastions[i].Port = 22
		}
		s.Bastions[i].User = or(s.Bastions[i].User, s.User)
	}
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
