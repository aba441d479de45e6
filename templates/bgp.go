package templates

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/labctl/lab/provision/labfile"
	"gopkg.in/yaml.v3"
)

// Paths of the BGP files.
const (
	FRRConfigPath  = "/etc/frr/frr.conf"
	FRRDaemonsPath = "/etc/frr/daemons"
	// CiliumBGPPath holds the Cilium BGP control plane's resources on
	// the first control plane, which applies them.
	CiliumBGPPath = "/etc/lab/cilium-bgp.yaml"
)

// BGPPeerGroup is the FRR peer group of the Kubernetes nodes.
const BGPPeerGroup = "CILIUM"

// BGPFiles are FRR's configuration on the lab's BGP router and the Cilium
// BGP resources on the first control plane; nothing elsewhere or without
// bgp.
func BGPFiles(l *labfile.Lab, n *labfile.Node) ([]File, error) {
	r := l.BGPRouter()
	if r == nil {
		return nil, nil
	}
	switch {
	case n.Name == r.Name:
		conf, err := frrConfig(l, r, header(l, n))
		if err != nil {
			return nil, err
		}
		return []File{{Path: FRRConfigPath, Mode: 0o640, Content: conf}}, nil
	case l.IsFirstControlPlane(n):
		return []File{{Path: CiliumBGPPath, Mode: 0o644, Content: ciliumBGP(l, r, header(l, n))}}, nil
	}
	return nil, nil
}

// frrConfig is the router's frr.conf: bgpd with the peering nodes in one
// peer group, accepting and passing on every route (the lab is its own
// policy), several equal paths to a LoadBalancer address, and the
// networks the router announces.
func frrConfig(l *labfile.Lab, r *labfile.Node, head string) ([]byte, error) {
	b := l.BGP
	id := l.NodeIP(r)
	if !id.IsValid() {
		return nil, fmt.Errorf("the BGP router %s has no address to be its router-id", r.Name)
	}
	var w strings.Builder
	fmt.Fprintf(&w, "! %s\n", head)
	fmt.Fprintf(&w, "frr defaults traditional\nhostname %s\nlog syslog informational\nservice integrated-vtysh-config\n!\n", r.Name)
	fmt.Fprintf(&w, "router bgp %d\n", b.ASN)
	fmt.Fprintf(&w, " bgp router-id %s\n", id)
	w.WriteString(" bgp graceful-restart\n no bgp ebgp-requires-policy\n bgp bestpath as-path multipath-relax\n")
	fmt.Fprintf(&w, " neighbor %s peer-group\n neighbor %s remote-as %d\n neighbor %s timers 3 9\n", BGPPeerGroup, BGPPeerGroup, b.NodeASN, BGPPeerGroup)
	for _, n := range l.BGPPeers() {
		a, ok := l.AddressFacing(r, n)
		if !ok {
			return nil, fmt.Errorf("the BGP router %s shares no network with %s", r.Name, n.Name)
		}
		fmt.Fprintf(&w, " neighbor %s peer-group %s\n", a, BGPPeerGroup)
	}
	w.WriteString(" !\n address-family ipv4 unicast\n")
	for _, a := range b.Announce {
		fmt.Fprintf(&w, "  network %s\n", a)
	}
	w.WriteString("  maximum-paths 8\n")
	if b.NodeASN == b.ASN {
		w.WriteString("  maximum-paths ibgp 8\n")
	}
	w.WriteString(" exit-address-family\nexit\n!\n")
	return []byte(w.String()), nil
}

// ciliumBGPAPIVersion is the API of Cilium's BGP resources: cilium.io/v2
// from 1.18, v2alpha1 before.
func ciliumBGPAPIVersion(version string) string {
	if strings.HasPrefix(version, "1.17.") || strings.HasPrefix(version, "1.16.") {
		return "cilium.io/v2alpha1"
	}
	return "cilium.io/v2"
}

// ciliumBGP is the Cilium BGP control plane's resources: one cluster
// config per address the router has toward the peering nodes (nodes in
// another subnet reach it at another address), one peer config, and what
// the nodes advertise.
func ciliumBGP(l *labfile.Lab, r *labfile.Node, head string) []byte {
	api := ciliumBGPAPIVersion(l.CNI.Cilium.Version)
	b := l.BGP
	var docs []string
	// Peering nodes grouped by the router address they use, in the
	// order of the first node of each group.
	var order []netip.Addr
	groups := map[netip.Addr][]string{}
	for _, n := range l.BGPPeers() {
		a, ok := l.AddressFacing(n, r)
		if !ok {
			continue
		}
		if _, seen := groups[a]; !seen {
			order = append(order, a)
		}
		groups[a] = append(groups[a], n.Name)
	}
	for _, a := range order {
		docs = append(docs, yamlDoc(map[string]any{
			"apiVersion": api,
			"kind":       "CiliumBGPClusterConfig",
			"metadata":   map[string]any{"name": "lab-" + strings.ReplaceAll(a.String(), ".", "-")},
			"spec": map[string]any{
				"nodeSelector": map[string]any{"matchExpressions": []any{map[string]any{
					"key": "kubernetes.io/hostname", "operator": "In", "values": strSlice(groups[a]),
				}}},
				"bgpInstances": []any{map[string]any{
					"name":     "lab",
					"localASN": int(b.NodeASN),
					"peers": []any{map[string]any{
						"name":          r.Name,
						"peerASN":       int(b.ASN),
						"peerAddress":   a.String(),
						"peerConfigRef": map[string]any{"name": "lab"},
					}},
				}},
			},
		}))
	}
	docs = append(docs, yamlDoc(map[string]any{
		"apiVersion": api,
		"kind":       "CiliumBGPPeerConfig",
		"metadata":   map[string]any{"name": "lab"},
		"spec": map[string]any{
			"timers":          map[string]any{"connectRetryTimeSeconds": 5, "holdTimeSeconds": 9, "keepAliveTimeSeconds": 3},
			"gracefulRestart": map[string]any{"enabled": true, "restartTimeSeconds": 15},
			"families": []any{map[string]any{
				"afi": "ipv4", "safi": "unicast",
				"advertisements": map[string]any{"matchLabels": map[string]any{"lab.labctl.io/bgp": "lab"}},
			}},
		},
	}))
	var ads []any
	if b.Advertises(labfile.AdvertisePodCIDR) {
		ads = append(ads, map[string]any{"advertisementType": "PodCIDR"})
	}
	if b.Advertises(labfile.AdvertiseLoadBalancerIP) {
		ads = append(ads, map[string]any{
			"advertisementType": "Service",
			"service":           map[string]any{"addresses": []any{"LoadBalancerIP"}},
			// Every Service: a selector no Service's labels fail.
			"selector": map[string]any{"matchExpressions": []any{map[string]any{
				"key": "lab.labctl.io/no-bgp", "operator": "DoesNotExist",
			}}},
		})
	}
	docs = append(docs, yamlDoc(map[string]any{
		"apiVersion": api,
		"kind":       "CiliumBGPAdvertisement",
		"metadata":   map[string]any{"name": "lab", "labels": map[string]any{"lab.labctl.io/bgp": "lab"}},
		"spec":       map[string]any{"advertisements": ads},
	}))
	return []byte("# " + head + "\n" + strings.Join(docs, "---\n"))
}

func strSlice(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// yamlDoc is v as one YAML document, keys sorted and indented as kubectl
// prints, so the same lab gives the same bytes.
func yamlDoc(v map[string]any) string {
	var b strings.Builder
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		// Maps of strings, numbers and lists always encode.
		panic(fmt.Sprintf("templates: encode %v: %v", v, err))
	}
	_ = enc.Close()
	return b.String()
}
