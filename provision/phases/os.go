package phases

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/labctl/lab/provision/labfile"
	"github.com/labctl/lab/provision/workflow"
	"github.com/labctl/lab/templates"
	"github.com/labctl/lab/templates/nodefiles"
)

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
func (r *Run) PrepareOS() workflow.Phase {
	return workflow.Phase{
		Name:  nodefiles.OS,
		Needs: needsFacts,
		Title: "hostname, /etc/hosts, swap off, sysctls, kernel modules",
		Nodes: r.AllNodes,
		Done: func(ctx context.Context, node string) (bool, error) {
			files, err := r.files(node, nodefiles.OS)
			if err != nil {
				return false, err
			}
			f, _ := r.Facts(node)
			ok, err := r.filesMatch(ctx, node, files)
			if err != nil || !ok || len(f.Swap) > 0 || f.Hostname != node {
				return false, err
			}
			return r.hostsCurrent(ctx, node), nil
		},
		Run: func(ctx context.Context, node string) error {
			files, err := r.files(node, nodefiles.OS)
			if err != nil {
				return err
			}
			f, _ := r.Facts(node)
			_, err = r.install(ctx, node, files, prepareScript(r.Lab, node, f))
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
func (r *Run) hostsCurrent(ctx context.Context, node string) bool {
	begin, end := templates.HostsMarkers(r.Lab)
	_, err := r.run(ctx, node, "sed -n "+shq("/^"+sedRegex(begin)+"$/,/^"+sedRegex(end)+"$/p")+" /etc/hosts | cmp -s - "+
		templates.HostsBlockPath+" && [ \"$(cat /proc/sys/net/ipv4/ip_forward)\" = 1 ]")
	return err == nil
}

// filesMatch reports whether every file is on the node with this content
// and mode, with one command.
func (r *Run) filesMatch(ctx context.Context, node string, files []templates.File) (bool, error) {
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
	out, err := r.run(ctx, node, script(fileSumsSh, paths...))
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
