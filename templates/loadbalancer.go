package templates

import (
	"fmt"
	"io/fs"
	"net/netip"
	"strconv"

	"github.com/labctl/lab/provision/labfile"
)

// DefaultHealthPort is where HAProxy answers on 127.0.0.1 whether it has a
// healthy kube-apiserver behind it (/healthz) and shows its statistics
// (/stats). Keepalived's track script asks it. If the lab's API or LB port
// is this one, the next free port is used.
const DefaultHealthPort = 8404

// haproxyData fills haproxy.cfg.
type haproxyData struct {
	Header     string
	LBPort     int
	HealthPort int
	Servers    []backend
}

// backend is one kube-apiserver behind HAProxy.
type backend struct {
	Name    string
	Address string // host:port
}

// keepalivedData fills keepalived.conf.
type keepalivedData struct {
	Header     string
	Node       string
	Interface  string
	RouterID   int
	Priority   int
	AdvertInt  string
	Preempt    bool
	SourceIP   string
	Peers      []string
	VIP        string // address/prefix-length
	ScriptPath string
}

// checkData fills check_apiserver.sh.
type checkData struct {
	Header     string
	HealthPort int
	LBPort     int
	VIP        string
	Interface  string
}

// loadBalancerFiles renders HAProxy and Keepalived for a node that may hold
// the VIP.
func loadBalancerFiles(l *labfile.Lab, n *labfile.Node, f Facts, h string) ([]File, error) {
	cp := l.ControlPlane
	vip, err := netip.ParseAddr(cp.VIP)
	if err != nil {
		return nil, fmt.Errorf("controlPlane.vip: %w", err)
	}
	nw := l.NodeNetworkDef()
	if nw == nil || !nw.Prefix().Contains(vip) {
		return nil, fmt.Errorf("VIP %s is outside the node network %q", vip, l.Kubernetes.NodeNetwork)
	}
	health := healthPort(cp)

	hp := haproxyData{Header: h, LBPort: cp.LBPort, HealthPort: health}
	for _, c := range l.ControlPlanes() {
		hp.Servers = append(hp.Servers, backend{
			Name:    c.Name,
			Address: netip.AddrPortFrom(l.NodeIP(c), uint16(cp.APIPort)).String(),
		})
	}

	lbs := l.LoadBalancers()
	prio, err := priority(lbs, n)
	if err != nil {
		return nil, err
	}
	ka := keepalivedData{
		Header:     h,
		Node:       n.Name,
		Interface:  f.Interface,
		RouterID:   cp.VRRP.RouterID,
		Priority:   prio,
		AdvertInt:  strconv.FormatFloat(cp.VRRP.AdvertInterval, 'f', -1, 64),
		Preempt:    cp.VRRP.Preempt,
		VIP:        netip.PrefixFrom(vip, nw.Prefix().Bits()).String(),
		ScriptPath: CheckScriptPath,
	}
	if cp.VRRP.UnicastEnabled() {
		for _, p := range lbs {
			if p.Name != n.Name {
				ka.Peers = append(ka.Peers, l.NodeIP(p).String())
			}
		}
		// Without peers keepalived falls back to multicast and warns
		// (which fails `keepalived -t`), so a lone node names none.
		if len(ka.Peers) > 0 {
			ka.SourceIP = l.NodeIP(n).String()
		}
	}

	ck := checkData{Header: h, HealthPort: health, LBPort: cp.LBPort, VIP: vip.String(), Interface: f.Interface}

	var files []File
	for _, r := range []struct {
		path string
		mode fs.FileMode
		data any
	}{
		{HAProxyConfigPath, 0o644, hp},
		{KeepalivedConfigPath, 0o644, ka},
		// Keepalived's enable_script_security runs only scripts that no
		// one but root can write.
		{CheckScriptPath, 0o755, ck},
	} {
		file, err := render(r.path, r.mode, r.data)
		if err != nil {
			return nil, err
		}
		files = append(files, file)
	}
	return files, nil
}

// healthPort picks HAProxy's local health port so that it never clashes
// with the ports the lab uses.
func healthPort(cp labfile.ControlPlane) int {
	p := DefaultHealthPort
	for p == cp.LBPort || p == cp.APIPort {
		p++
	}
	return p
}

// priority gives load-balancer nodes distinct VRRP priorities, descending in
// file order. With nopreempt (the default) they only break ties between
// nodes that become ready together; with preempt the first healthy node in
// file order holds the VIP.
func priority(lbs []*labfile.Node, n *labfile.Node) (int, error) {
	const top = 200
	step := 10
	if len(lbs) > top/step {
		step = 1
	}
	if len(lbs) >= top {
		return 0, fmt.Errorf("%d load-balancer nodes: VRRP priorities run out at %d", len(lbs), top-1)
	}
	for i, lb := range lbs {
		if lb.Name == n.Name {
			return top - i*step, nil
		}
	}
	return 0, fmt.Errorf("not a load-balancer node")
}
