package steps

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/labctl/lab/provision/labfile"
	"github.com/labctl/lab/provision/phase"
	"github.com/labctl/lab/templates"
	"github.com/labctl/lab/templates/nodefiles"
)

// The phases every phase that works on nodes builds on: connect dials
// every node, facts reads what the node files depend on.
const (
	ConnectPhase = "connect"
	FactsPhase   = "facts"
)

// needsFacts is what a phase that renders or checks node files needs run
// first in the same command: the facts of its nodes.
var needsFacts = []string{FactsPhase}

// Connect reaches every node over SSH, verifying host keys per the lab's
// policy. It always runs: a connection is what every later phase needs.
func (c *Cluster) Connect() phase.Phase {
	return phase.Phase{
		Name:     ConnectPhase,
		ReadOnly: true,
		Title:    "reach every node over SSH (host keys: " + c.Lab.SSH.KnownHosts + ")",
		Nodes:    c.AllNodes,
		Run: func(ctx context.Context, node string) error {
			_, err := c.run(ctx, node, "true")
			return err
		},
		Describe: func(string) []string {
			return []string{"connect over SSH; verify the host key against " + c.State.KnownHosts()}
		},
	}
}

// GatherFacts reads each node's OS, kernel and interfaces and finds the one
// that carries the node network. It only reads, so it always runs.
func (c *Cluster) GatherFacts() phase.Phase {
	return phase.Phase{
		Name:     FactsPhase,
		ReadOnly: true,
		Needs:    []string{ConnectPhase},
		Title:    "read OS, arch, kernel and interfaces",
		Nodes:    c.AllNodes,
		Run: func(ctx context.Context, node string) error {
			out, err := c.run(ctx, node, factsScript)
			if err != nil {
				return err
			}
			f, err := parseFacts(out, c.Lab.NodeIP(c.node(node)))
			if err != nil {
				return err
			}
			c.setFacts(node, f)
			c.info("facts", node, "%s %s %s, kernel %s, node network on %s", f.OS, f.OSVersion, f.Arch, f.Kernel, f.Interface)
			return nil
		},
		Describe: func(string) []string { return []string{"read /etc/os-release, uname, ip addr (read only)"} },
	}
}

// prepareScript sets the hostname, writes lab's block (the os phase uploads
// it as templates.HostsBlockPath) into /etc/hosts, turns
// swap off for good (swapoff only when the facts saw swap), applies lab's
// sysctls and loads its modules. Every step checks before it changes, so a
// second run changes nothing.
// /etc/hosts is rewritten through a temporary file; Docker bind-mounts it,
// so there it is copied over in place instead of renamed.
func prepareScript(l *labfile.Lab, node string, f *Facts) string {
	swap := "off"
	if len(f.Swap) > 0 {
		swap = "on"
	}
	begin, end := templates.HostsMarkers(l)
	return script(prepareSh, node, templates.HostsBlockPath, sedRegex(begin), sedRegex(end),
		swap, templates.ModulesPath, templates.SysctlPath)
}

// PrepareOS sets hostname, /etc/hosts, swap, sysctls and kernel modules.
func (c *Cluster) PrepareOS() phase.Phase {
	return phase.Phase{
		Name:  nodefiles.OS,
		Needs: needsFacts,
		Title: "hostname, /etc/hosts, swap off, sysctls, kernel modules",
		Nodes: c.AllNodes,
		Done: func(ctx context.Context, node string) (bool, error) {
			files, err := c.files(node, nodefiles.OS)
			if err != nil {
				return false, err
			}
			f, _ := c.Facts(node)
			ok, err := c.filesMatch(ctx, node, files)
			if err != nil || !ok || len(f.Swap) > 0 || f.Hostname != node {
				return false, err
			}
			return c.hostsCurrent(ctx, node), nil
		},
		Run: func(ctx context.Context, node string) error {
			files, err := c.files(node, nodefiles.OS)
			if err != nil {
				return err
			}
			f, _ := c.Facts(node)
			_, err = c.install(ctx, node, files, prepareScript(c.Lab, node, f))
			return err
		},
		Describe: func(node string) []string {
			return []string{"set hostname " + node, "write lab's block in /etc/hosts", "swapoff -a; comment swap out of /etc/fstab",
				"write " + templates.SysctlPath + " and " + templates.ModulesPath + "; apply them"}
		},
	}
}

// hostsCurrent reports whether /etc/hosts holds lab's block as the os
// phase uploaded it (filesMatch has checked that file) and the node
// forwards IPv4, in one command that only reads.
func (c *Cluster) hostsCurrent(ctx context.Context, node string) bool {
	begin, end := templates.HostsMarkers(c.Lab)
	_, err := c.run(ctx, node, "sed -n "+shq("/^"+sedRegex(begin)+"$/,/^"+sedRegex(end)+"$/p")+" /etc/hosts | cmp -s - "+
		templates.HostsBlockPath+" && [ \"$(cat /proc/sys/net/ipv4/ip_forward)\" = 1 ]")
	return err == nil
}

// filesMatch reports whether every file is on the node with this content
// and mode, with one command.
func (c *Cluster) filesMatch(ctx context.Context, node string, files []templates.File) (bool, error) {
	if len(files) == 0 {
		return true, nil
	}
	var paths []string
	want := map[string]string{}
	for _, f := range files {
		paths = append(paths, f.Path)
		want[f.Path] = fmt.Sprintf("%s %o", sha256Hex(f.Content), f.Mode.Perm())
	}
	sort.Strings(paths)
	out, err := c.run(ctx, node, script(fileSumsSh, paths...))
	if err != nil {
		return false, err
	}
	have := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if p, rest, ok := strings.Cut(line, " "); ok {
			have[p] = rest
		}
	}
	for p, w := range want {
		if have[p] != w {
			return false, nil
		}
	}
	return true, nil
}
