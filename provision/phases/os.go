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

// PrepareOS sets hostname, /etc/hosts, swap, sysctls and kernel modules,
// and on a Cilium lab's Kubernetes nodes mounts bpffs and makes the mounts
// shared where they are not.
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
			if !r.hostsCurrent(ctx, node) {
				return false, nil
			}
			lacks, err := r.ciliumMountsLacking(ctx, node)
			return err == nil && len(lacks) == 0, nil
		},
		Run: func(ctx context.Context, node string) error {
			files, err := r.files(node, nodefiles.OS)
			if err != nil {
				return err
			}
			f, _ := r.Facts(node)
			if _, err = r.install(ctx, node, files, prepareScript(r.Lab, node, f)); err != nil {
				return err
			}
			return r.fixCiliumMounts(ctx, node)
		},
		Describe: func(node string) []string {
			lines := []string{"set hostname " + node, "write lab's block in /etc/hosts", "swapoff -a; comment swap out of /etc/fstab",
				"write " + templates.SysctlPath + " and " + templates.ModulesPath + "; apply them"}
			if r.needsCiliumMounts(node) {
				lines = append(lines, "for Cilium: mount bpffs at /sys/fs/bpf and make the mounts shared (mount --make-rshared /) where they are not")
			}
			return lines
		},
	}
}

// needsCiliumMounts says whether node runs Cilium's agent, whose chart
// needs bpffs at /sys/fs/bpf and shared mounts on the node.
func (r *Run) needsCiliumMounts(node string) bool {
	n := r.node(node)
	return r.Lab.CNI.Type == labfile.CNICilium && n != nil && n.InCluster()
}

// ciliumMountFix is the command that gives a node what node_mounts.sh
// says it lacks. A VM's systemd has done both at boot; a container node's
// entrypoint does them too, from lab's node image on.
func ciliumMountFix(lack string) (string, bool) {
	switch lack {
	case "bpffs":
		// A bpffs of the node's own (each mount is a new instance, so
		// the nodes of one host do not see each other's pins), shared
		// so that the agent's mount of it propagates.
		return "mount -t bpf -o nosuid,nodev,noexec,mode=0700 bpffs /sys/fs/bpf && mount --make-shared /sys/fs/bpf", true
	case "shared":
		// systemd makes every mount shared on a machine, but not in a
		// container; the kubelet's Bidirectional and HostToContainer
		// mounts need it.
		return "mount --make-rshared /", true
	}
	return "", false
}

// ciliumMountsLacking lists what node's mounts lack for Cilium (see
// node_mounts.sh); nothing for nodes that do not run it. It only reads.
func (r *Run) ciliumMountsLacking(ctx context.Context, node string) ([]string, error) {
	if !r.needsCiliumMounts(node) {
		return nil, nil
	}
	out, err := r.run(ctx, node, nodeMountsSh)
	if err != nil {
		return nil, err
	}
	return strings.Fields(out), nil
}

// fixCiliumMounts mounts bpffs and makes the mounts shared where node
// lacks them, then checks again.
func (r *Run) fixCiliumMounts(ctx context.Context, node string) error {
	lacks, err := r.ciliumMountsLacking(ctx, node)
	if err != nil || len(lacks) == 0 {
		return err
	}
	for _, l := range lacks {
		cmd, ok := ciliumMountFix(l)
		if !ok {
			return fmt.Errorf("node_mounts.sh says the node lacks %q, which lab does not know how to give", l)
		}
		if _, err := r.run(ctx, node, cmd); err != nil {
			return fmt.Errorf("giving the node what Cilium needs (%s): %w", l, err)
		}
	}
	if still, err := r.ciliumMountsLacking(ctx, node); err != nil {
		return err
	} else if len(still) > 0 {
		return fmt.Errorf("still %s after mounting: Cilium's agent would not start here (lab doctor says more)", strings.Join(still, ", "))
	}
	return nil
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
