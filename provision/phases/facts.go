package phases

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/labctl/lab/provision/workflow"
)

// Facts are what lab learns about a node before changing anything on it.
type Facts struct {
	OS        string // ID from /etc/os-release: debian, ubuntu, ...
	OSVersion string
	Arch      string // uname -m
	Kernel    string // uname -r
	Hostname  string
	// Container names the container technology when the node is one
	// (systemd's /run/systemd/container), "" on VMs and bare metal.
	Container string
	// Addrs maps interface names to their IPv4 prefixes.
	Addrs map[string][]netip.Prefix
	// Interface carries the node network: it holds the node's address.
	Interface string
	// Binaries maps the programs lab cares about to their paths ("" when
	// missing).
	Binaries map[string]string
	// Swap lists active swap devices.
	Swap []string
	// Systemd is true when PID 1 is systemd.
	Systemd bool
}

// parseFacts reads the output of factsScript (facts.sh: one key=value
// a line; it only reads) and finds the interface that holds
// nodeIP. A node without that address is an error that lists what it has.
func parseFacts(out string, nodeIP netip.Addr) (*Facts, error) {
	f := &Facts{Addrs: map[string][]netip.Prefix{}, Binaries: map[string]string{}}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		switch k {
		case "os":
			f.OS = v
		case "osversion":
			f.OSVersion = v
		case "arch":
			f.Arch = v
		case "kernel":
			f.Kernel = v
		case "hostname":
			f.Hostname = v
		case "container":
			f.Container = v
		case "pid1":
			f.Systemd = v == "systemd"
		case "addr":
			name, cidr, _ := strings.Cut(v, " ")
			name, _, _ = strings.Cut(name, "@") // veth names: eth0@if12
			if p, err := netip.ParsePrefix(cidr); err == nil {
				f.Addrs[name] = append(f.Addrs[name], p)
			}
		case "swap":
			f.Swap = append(f.Swap, v)
		case "bin":
			name, path, _ := strings.Cut(v, " ")
			f.Binaries[name] = strings.TrimSpace(path)
		}
	}
	for name, ps := range f.Addrs {
		for _, p := range ps {
			if p.Addr() == nodeIP {
				f.Interface = name
			}
		}
	}
	if f.Interface == "" {
		return f, fmt.Errorf("no interface holds the node address %s (it has: %s); "+
			"check the node's address in the lab file, or that its lab network is up", nodeIP, f.describeAddrs())
	}
	return f, nil
}

func (f *Facts) describeAddrs() string {
	var names []string
	for n := range f.Addrs {
		names = append(names, n)
	}
	sort.Strings(names)
	var parts []string
	for _, n := range names {
		for _, p := range f.Addrs[n] {
			parts = append(parts, n+" "+p.String())
		}
	}
	if len(parts) == 0 {
		return "no IPv4 addresses"
	}
	return strings.Join(parts, ", ")
}

// GatherFacts reads each node's OS, kernel and interfaces and finds the one
// that carries the node network. It only reads, so it always runs.
func (r *Run) GatherFacts() workflow.Phase {
	return workflow.Phase{
		Name:     FactsPhase,
		ReadOnly: true,
		Needs:    []string{ConnectPhase},
		Title:    "read OS, arch, kernel and interfaces",
		Nodes:    r.AllNodes,
		Run: func(ctx context.Context, node string) error {
			out, err := r.run(ctx, node, factsScript)
			if err != nil {
				return err
			}
			f, err := parseFacts(out, r.Lab.NodeIP(r.node(node)))
			if err != nil {
				return err
			}
			r.setFacts(node, f)
			r.info("facts", node, "%s %s %s, kernel %s, node network on %s", f.OS, f.OSVersion, f.Arch, f.Kernel, f.Interface)
			return nil
		},
		Describe: func(string) []string { return []string{"read /etc/os-release, uname, ip addr (read only)"} },
	}
}
