package provision

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labctl/lab/provision/labfile"
)

// SSHCommand returns the OpenSSH command line that logs into node with the
// lab's keys and its own known_hosts, checking the host key strictly. It
// first connects once through lab's transport, so the node's key is in
// that known_hosts under the lab's policy before OpenSSH looks.
func SSHCommand(ctx context.Context, l *labfile.Lab, o Options, node string, remote []string) ([]string, error) {
	n := l.Node(node)
	if n == nil {
		return nil, fmt.Errorf("no node called %q in lab %s (nodes: %s)", node, l.Metadata.Name, strings.Join(nodeNames(l), ", "))
	}
	o.readOnly = true
	s, err := open(l, o, "ssh")
	if err != nil {
		return nil, err
	}
	defer s.close()
	if _, err := s.Dial(ctx, node); err != nil {
		return nil, fmt.Errorf("%s: %w", node, err)
	}
	in := s.nodes[node]
	args := []string{"ssh",
		"-o", "UserKnownHostsFile=" + s.dir.KnownHosts(),
		"-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "StrictHostKeyChecking=yes",
		"-o", "IdentitiesOnly=" + strconv.FormatBool(!l.SSH.AgentEnabled()),
		"-p", strconv.Itoa(in.Port),
	}
	for _, k := range s.keyFiles() {
		args = append(args, "-i", expandHome(k))
	}
	var jumps []string
	for _, b := range l.SSH.Bastions {
		jumps = append(jumps, fmt.Sprintf("%s@%s:%d", b.User, b.Host, b.Port))
	}
	if len(jumps) > 0 {
		args = append(args, "-J", strings.Join(jumps, ","))
	}
	if len(remote) == 0 {
		args = append(args, "-t")
	}
	args = append(args, in.User+"@"+in.Host)
	if len(remote) > 0 {
		args = append(args, "--")
		args = append(args, remote...)
	}
	return args, nil
}

func nodeNames(l *labfile.Lab) []string {
	out := make([]string, len(l.Nodes))
	for i, n := range l.Nodes {
		out[i] = n.Name
	}
	return out
}

// Kubeconfig returns the lab's admin kubeconfig, written by lab up.
func Kubeconfig(l *labfile.Lab, o Options) ([]byte, error) {
	if o.StateRoot == "" {
		return nil, errors.New("no state directory configured")
	}
	p := filepath.Join(o.StateRoot, l.Metadata.Name, "admin.conf")
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("lab %s has no kubeconfig yet: lab up writes it in its kubeconfig phase (run lab up)", l.Metadata.Name)
	}
	return data, err
}

// Logs collects, from every node it can reach, the journal of kubelet,
// containerd, HAProxy, Keepalived and lab-node plus the last boot messages,
// and the lab's own journal of phases, into one .tar.gz at out. A node that
// cannot be reached is noted in the archive, not fatal.
func Logs(ctx context.Context, l *labfile.Lab, o Options, out string) (collected int, err error) {
	o.readOnly = true
	s, err := open(l, o, "logs")
	if err != nil {
		return 0, err
	}
	defer s.close()
	if err := s.refreshNodes(ctx); err != nil {
		return 0, err
	}
	type entry struct {
		name string
		data []byte
	}
	var (
		mu      sync.Mutex
		entries []entry
		wg      sync.WaitGroup
	)
	add := func(name string, data []byte) {
		mu.Lock()
		defer mu.Unlock()
		entries = append(entries, entry{name, data})
	}
	if j, err := s.dir.ReadFile("journal.json"); err == nil {
		add("lab/journal.json", j)
	}
	const units = "-u kubelet -u containerd -u haproxy -u keepalived -u lab-node -u ssh"
	cmds := map[string]string{
		"services.log": "journalctl --no-pager -o short-iso -n 5000 " + units + " 2>&1 || true",
		"boot.log":     "journalctl --no-pager -o short-iso -b -n 2000 2>&1 || dmesg 2>&1 || true",
		"status.txt":   "systemctl --no-pager status kubelet containerd haproxy keepalived lab-node 2>&1; ip -4 addr; ip route; true",
		"pods.txt":     "crictl ps -a 2>&1 || true",
	}
	for i := range l.Nodes {
		node := l.Nodes[i].Name
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			defer cancel()
			conn, err := s.Dial(cctx, node)
			if err != nil {
				add(node+"/UNREACHABLE.txt", []byte(err.Error()+"\n"))
				return
			}
			for file, cmd := range cmds {
				text, err := conn.Run(cctx, cmd)
				if err != nil {
					text += "\n(lab: " + err.Error() + ")\n"
				}
				add(node+"/"+file, []byte(text))
			}
		}()
	}
	wg.Wait()
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
	f, err := os.OpenFile(out, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, err
	}
	zw := gzip.NewWriter(f)
	tw := tar.NewWriter(zw)
	now := time.Now()
	for _, e := range entries {
		hdr := &tar.Header{Name: l.Metadata.Name + "/" + e.name, Mode: 0o600, Size: int64(len(e.data)), ModTime: now}
		if err := tw.WriteHeader(hdr); err != nil {
			f.Close()
			return 0, err
		}
		if _, err := tw.Write(e.data); err != nil {
			f.Close()
			return 0, err
		}
	}
	for _, c := range []io.Closer{tw, zw, f} {
		if err := c.Close(); err != nil {
			return 0, err
		}
	}
	return len(entries), nil
}
