package steps

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/labctl/lab/provision/labfile"
	"github.com/labctl/lab/provision/phase"
	"github.com/labctl/lab/templates"
)

// Connect reaches every node over SSH, verifying host keys per the lab's
// policy. It always runs: a connection is what every later phase needs.
func (c *Cluster) Connect() phase.Phase {
	return phase.Phase{
		Name:  "connect",
		Title: "reach every node over SSH (host keys: " + c.Lab.SSH.KnownHosts + ")",
		Nodes: c.AllNodes,
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
		Name:  "facts",
		Title: "read OS, arch, kernel and interfaces",
		Nodes: c.AllNodes,
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

// hostsBlock is the part of /etc/hosts lab manages: every node's name at
// its node-network address.
func hostsBlock(l *labfile.Lab) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# BEGIN lab %s\n", l.Metadata.Name)
	for i := range l.Nodes {
		fmt.Fprintf(&b, "%s %s\n", l.NodeIP(&l.Nodes[i]), l.Nodes[i].Name)
	}
	fmt.Fprintf(&b, "# END lab %s\n", l.Metadata.Name)
	return b.String()
}

// rendered returns the files at paths that node receives, rendered with
// the facts gathered from it.
func (c *Cluster) rendered(node string, paths ...string) ([]templates.File, error) {
	f, err := c.Facts(node)
	if err != nil {
		return nil, err
	}
	all, err := templates.NodeFiles(c.Lab, c.node(node), templates.Facts{Interface: f.Interface})
	if err != nil {
		return nil, err
	}
	return pick(all, paths...), nil
}

// osFiles are the files the os phase owns on node.
func (c *Cluster) osFiles(node string) ([]templates.File, error) {
	return c.rendered(node, templates.SysctlPath, templates.ModulesPath)
}

func pick(files []templates.File, paths ...string) []templates.File {
	var out []templates.File
	for _, f := range files {
		for _, p := range paths {
			if f.Path == p {
				out = append(out, f)
			}
		}
	}
	return out
}

// prepareScript sets the hostname, writes lab's block into /etc/hosts, turns
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
	return script(prepareSh, node, hostsBlock(l),
		sedRegex("# BEGIN lab "+l.Metadata.Name), sedRegex("# END lab "+l.Metadata.Name),
		swap, templates.ModulesPath, templates.SysctlPath)
}

// PrepareOS sets hostname, /etc/hosts, swap, sysctls and kernel modules.
func (c *Cluster) PrepareOS() phase.Phase {
	return phase.Phase{
		Name:  "os",
		Title: "hostname, /etc/hosts, swap off, sysctls, kernel modules",
		Nodes: c.AllNodes,
		Done: func(ctx context.Context, node string) (bool, error) {
			files, err := c.osFiles(node)
			if err != nil {
				return false, err
			}
			f, _ := c.Facts(node)
			ok, err := c.filesMatch(ctx, node, files)
			if err != nil || !ok || len(f.Swap) > 0 || f.Hostname != node {
				return false, err
			}
			out, err := c.run(ctx, node, "grep -c '^# BEGIN lab ' /etc/hosts; cat /proc/sys/net/ipv4/ip_forward")
			if err != nil {
				return false, err
			}
			// The block's content is compared by the script; here only
			// its presence and forwarding are checked cheaply.
			return strings.Fields(out)[0] != "0" && strings.HasSuffix(strings.TrimSpace(out), "1") && c.hostsCurrent(ctx, node), nil
		},
		Run: func(ctx context.Context, node string) error {
			files, err := c.osFiles(node)
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

func (c *Cluster) hostsCurrent(ctx context.Context, node string) bool {
	l := c.Lab
	out, err := c.run(ctx, node, "sed -n "+shq("/^"+sedRegex("# BEGIN lab "+l.Metadata.Name)+"$/,/^"+sedRegex("# END lab "+l.Metadata.Name)+"$/p")+" /etc/hosts")
	return err == nil && out == hostsBlock(l)
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
