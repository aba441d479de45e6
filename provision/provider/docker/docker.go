// Package docker is the provider that makes a lab's nodes out of containers:
// one container per node, booting systemd and sshd from lab's node image
// (see nodeimage), on Docker networks with the lab file's subnets and static
// addresses. Nodes are then provisioned over SSH like any other machine.
//
// Everything it creates carries the label io.labctl.lab=<lab name>, and
// Delete removes only what carries that label, so labs never touch each
// other or anything else on the Docker host.
package docker

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/labctl/lab/provision/labfile"
	"github.com/labctl/lab/provision/provider"
	"github.com/labctl/lab/provision/provider/docker/dockercli"
)

// Labels on every object the provider creates.
const (
	LabelLab     = "io.labctl.lab"
	LabelNode    = "io.labctl.node"
	LabelNetwork = "io.labctl.network"
	// LabelConfig is a hash of what a node container was created with, so
	// that Create can tell a node it may keep from one the lab file changed.
	LabelConfig = "io.labctl.config"
)

// DefaultBootTimeout bounds how long Create waits for a node's sshd.
const DefaultBootTimeout = 2 * time.Minute

// Options configure a Provider.
type Options struct {
	// StateDir is the lab's state directory. The provider keeps the SSH
	// client key it authorises on the nodes there (id_ed25519, 0600).
	StateDir string
	// Docker is the client to use. Default: dockercli.New("").
	Docker *dockercli.CLI
	// BootTimeout bounds the wait for each node's sshd. Default:
	// DefaultBootTimeout.
	BootTimeout time.Duration
	// SysctlRecord is the host-wide record of the host settings node
	// kubelets change. Default: DefaultSysctlRecord(). Only Linux has one:
	// elsewhere the nodes run in the Docker installation's VM (sysctl_other.go).
	SysctlRecord string
}

// Provider creates container nodes for one lab.
type Provider struct {
	stateDir     string
	cli          *dockercli.CLI
	bootTimeout  time.Duration
	sysctlRecord string

	mu      sync.Mutex
	runArgs []string // the host-dependent docker run flags, once probed
}

var _ provider.Provider = (*Provider)(nil)

// New returns a Provider. It does not contact Docker yet.
func New(o Options) (*Provider, error) {
	if o.StateDir == "" {
		return nil, errors.New("docker provider: no state directory")
	}
	if o.Docker == nil {
		cli, err := dockercli.New("")
		if err != nil {
			return nil, err
		}
		o.Docker = cli
	}
	if o.BootTimeout == 0 {
		o.BootTimeout = DefaultBootTimeout
	}
	if o.SysctlRecord == "" {
		o.SysctlRecord = DefaultSysctlRecord()
	}
	return &Provider{stateDir: o.StateDir, cli: o.Docker, bootTimeout: o.BootTimeout, sysctlRecord: o.SysctlRecord}, nil
}

// ContainerName is the container of node n in lab l.
func ContainerName(l *labfile.Lab, n *labfile.Node) string {
	return l.Metadata.Name + "-" + n.Name
}

// NetworkName is the Docker network of lab network net.
func NetworkName(l *labfile.Lab, net string) string {
	return "lab-" + l.Metadata.Name + "-" + net
}

func volumeName(l *labfile.Lab, n *labfile.Node) string {
	return ContainerName(l, n) + "-containerd"
}

// Create makes the lab's networks and node containers, starts them, waits
// until each node's sshd runs and authorises the lab's client key on it.
// Nodes that exist with the same configuration are kept (and started if
// stopped); a node whose configuration changed is an error, since
// replacing it would silently destroy what runs on it.
func (p *Provider) Create(ctx context.Context, lab *labfile.Lab) error {
	pub, err := p.clientKey(lab)
	if err != nil {
		return err
	}
	if err := p.saveHostSysctls(); err != nil {
		return fmt.Errorf("save the host's sysctls: %w", err)
	}
	image := lab.Provider.Docker.Image
	if _, err := p.cli.Run(ctx, "image", "inspect", "--format", "{{.Id}}", image); err != nil {
		if dockercli.IsNotFound(err) {
			return fmt.Errorf("node image %s not found: build it with `lab image build`", image)
		}
		return fmt.Errorf("node image %s: %w", image, err)
	}
	for i := range lab.Networks {
		if err := p.ensureNetwork(ctx, lab, &lab.Networks[i]); err != nil {
			return err
		}
	}
	for i := range lab.Nodes {
		if err := p.ensureNode(ctx, lab, &lab.Nodes[i]); err != nil {
			return err
		}
	}

	// Nodes boot in parallel; wait for all of them.
	errs := make([]error, len(lab.Nodes))
	var wg sync.WaitGroup
	for i := range lab.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := &lab.Nodes[i]
			_, _, user := lab.SSHTarget(n)
			if err := p.waitSSHD(ctx, lab, n); err != nil {
				errs[i] = err
				return
			}
			errs[i] = p.authorize(ctx, ContainerName(lab, n), user, pub)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// ensureNetwork creates the Docker network for net, or checks that the one
// there is this lab's and has the lab's subnet.
func (p *Provider) ensureNetwork(ctx context.Context, lab *labfile.Lab, net *labfile.Network) error {
	name := NetworkName(lab, net.Name)
	out, err := p.cli.Run(ctx, "network", "inspect", "--format",
		`{{index .Labels "`+LabelLab+`"}} {{range .IPAM.Config}}{{.Subnet}} {{end}}`, name)
	if err == nil {
		fields := strings.Fields(string(out))
		if len(fields) == 0 || fields[0] != lab.Metadata.Name {
			return fmt.Errorf("network %s exists but does not belong to lab %s", name, lab.Metadata.Name)
		}
		for _, s := range fields[1:] {
			if pfx, err := netip.ParsePrefix(s); err == nil && pfx.Masked() == net.Prefix().Masked() {
				return nil
			}
		}
		return fmt.Errorf("network %s exists with subnets %v, not %s: run `lab down` first", name, fields[1:], net.CIDR)
	}
	if !dockercli.IsNotFound(err) {
		return fmt.Errorf("network %s: %w", name, err)
	}
	gw, err := gateway(lab, net)
	if err != nil {
		return err
	}
	args := []string{"network", "create", "--driver", "bridge",
		"--subnet", net.Prefix().Masked().String(), "--gateway", gw.String(),
		"--label", LabelLab + "=" + lab.Metadata.Name,
		"--label", LabelNetwork + "=" + net.Name,
	}
	if net.Prefix().Addr().Is6() {
		args = append(args, "--ipv6")
	}
	if _, err := p.cli.Run(ctx, append(args, name)...); err != nil {
		return fmt.Errorf("create network %s (%s): %w", name, net.CIDR, err)
	}
	return nil
}

// gateway is the Docker host's address on a lab network: the lab file's
// gateway when no node holds it, or else the first address no node and no
// VIP uses. A gateway a router node holds is that node's (the study's
// router VM at .200), and the host stands beside it.
func gateway(lab *labfile.Lab, net *labfile.Network) (netip.Addr, error) {
	used := map[netip.Addr]bool{}
	for _, n := range lab.Nodes {
		if a, err := netip.ParseAddr(n.Addresses[net.Name]); err == nil {
			used[a] = true
		}
	}
	if gw, err := netip.ParseAddr(net.Gateway); err == nil && !used[gw] {
		return gw, nil
	}
	if a, err := netip.ParseAddr(lab.ControlPlane.VIP); err == nil {
		used[a] = true
	}
	pfx := net.Prefix().Masked()
	for a := pfx.Addr().Next(); pfx.Contains(a); a = a.Next() {
		if !used[a] {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("network %s: no free address for the Docker host", net.Name)
}

// container is what docker inspect says about a node container.
type container struct {
	Name   string
	State  struct{ Status string }
	Config struct{ Labels map[string]string }
}

func (p *Provider) inspect(ctx context.Context, name string) (*container, error) {
	out, err := p.cli.Run(ctx, "container", "inspect", name)
	if err != nil {
		if dockercli.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("inspect %s: %w", name, err)
	}
	var cs []container
	if err := json.Unmarshal(out, &cs); err != nil || len(cs) != 1 {
		return nil, fmt.Errorf("inspect %s: unexpected output", name)
	}
	return &cs[0], nil
}

// nodeConfig hashes what a node container is created with.
func nodeConfig(lab *labfile.Lab, n *labfile.Node) string {
	h := sha256.New()
	fmt.Fprintf(h, "v1\nimage %s\nhostname %s\n", lab.Provider.Docker.Image, n.Name)
	nets := make([]string, 0, len(n.Addresses))
	for net, addr := range n.Addresses {
		nets = append(nets, net+"="+addr)
	}
	sort.Strings(nets)
	fmt.Fprintln(h, strings.Join(nets, ","))
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// ensureNode creates and starts node n's container, or keeps the one there.
func (p *Provider) ensureNode(ctx context.Context, lab *labfile.Lab, n *labfile.Node) error {
	name := ContainerName(lab, n)
	cfg := nodeConfig(lab, n)
	c, err := p.inspect(ctx, name)
	if err != nil {
		return err
	}
	if c != nil {
		if c.Config.Labels[LabelLab] != lab.Metadata.Name {
			return fmt.Errorf("%s: container %s exists but does not belong to lab %s", n.Name, name, lab.Metadata.Name)
		}
		if c.Config.Labels[LabelConfig] != cfg {
			return fmt.Errorf("%s: container %s was created from a different lab file (image or addresses changed): run `lab down` first", n.Name, name)
		}
		if c.State.Status == "running" {
			return nil
		}
		if _, err := p.cli.Run(ctx, "start", name); err != nil {
			return fmt.Errorf("%s: start: %w", n.Name, err)
		}
		return nil
	}

	runArgs, err := p.hostArgs(ctx, lab.Provider.Docker.Image)
	if err != nil {
		return err
	}
	vol := volumeName(lab, n)
	if _, err := p.cli.Run(ctx, "volume", "create",
		"--label", LabelLab+"="+lab.Metadata.Name, "--label", LabelNode+"="+n.Name, vol); err != nil {
		return fmt.Errorf("%s: volume: %w", n.Name, err)
	}

	// The first network is attached at creation, the others before start,
	// so that every interface exists when systemd boots.
	nets := nodeNetworks(lab, n)
	if len(nets) == 0 {
		return fmt.Errorf("%s: no address on any lab network", n.Name)
	}
	args := []string{"create",
		"--name", name,
		"--hostname", n.Name,
		"--label", LabelLab + "=" + lab.Metadata.Name,
		"--label", LabelNode + "=" + n.Name,
		"--label", LabelConfig + "=" + cfg,
		"--network", NetworkName(lab, nets[0].net),
		ipFlag(nets[0].addr), nets[0].addr.String(),
		"--env", "container=docker",
		"--sysctl", "net.ipv4.ip_forward=1",
		// containerd's snapshots cannot live on the container's own
		// overlay file system.
		"--volume", vol + ":/var/lib/containerd",
	}
	args = append(args, runArgs...)
	args = append(args, lab.Provider.Docker.Image)
	if _, err := p.cli.Run(ctx, args...); err != nil {
		return fmt.Errorf("%s: create container: %w", n.Name, err)
	}
	for _, nn := range nets[1:] {
		if _, err := p.cli.Run(ctx, "network", "connect", ipFlag(nn.addr), nn.addr.String(), NetworkName(lab, nn.net), name); err != nil {
			return fmt.Errorf("%s: connect to network %s: %w", n.Name, nn.net, err)
		}
	}
	if _, err := p.cli.Run(ctx, "start", name); err != nil {
		return fmt.Errorf("%s: start: %w", n.Name, err)
	}
	return nil
}

type nodeNet struct {
	net  string
	addr netip.Addr
}

// nodeNetworks lists a node's addresses, node network first, then the
// others in lab file order.
func nodeNetworks(lab *labfile.Lab, n *labfile.Node) []nodeNet {
	var out []nodeNet
	add := func(net string) {
		a, err := netip.ParseAddr(n.Addresses[net])
		if err == nil {
			out = append(out, nodeNet{net, a})
		}
	}
	add(lab.Kubernetes.NodeNetwork)
	for _, net := range lab.Networks {
		if net.Name != lab.Kubernetes.NodeNetwork {
			add(net.Name)
		}
	}
	return out
}

func ipFlag(a netip.Addr) string {
	if a.Is6() {
		return "--ip6"
	}
	return "--ip"
}

// hostArgs returns the docker run flags that depend on what this Docker
// host allows, probing it the first time: systemd needs a writable cgroup
// tree, its own /run and /tmp, and SIGRTMIN+3 to shut down cleanly, and
// the phases need most capabilities (iptables, VIPs, mounts, sysctls).
// Where --privileged is refused (a VM without CAP_SYS_RESOURCE), all
// capabilities but that one do the same job.
func (p *Provider) hostArgs(ctx context.Context, image string) ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.runArgs != nil {
		return p.runArgs, nil
	}
	out, err := p.cli.Run(ctx, "info", "--format", "{{.CgroupVersion}}")
	if err != nil {
		return nil, fmt.Errorf("docker info: %w", err)
	}
	cgroup2 := strings.TrimSpace(string(out)) == "2"
	_, err = p.cli.Run(ctx, "run", "--rm", "--privileged", "--network", "none", image, "true")
	privileged := err == nil
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	p.runArgs = runArgs(privileged, cgroup2, exists("/dev/kmsg"), exists("/lib/modules"))
	return p.runArgs, nil
}

// runArgs is hostArgs' decision, kept pure so it can be read and tested.
func runArgs(privileged, cgroup2, kmsg, modules bool) []string {
	var a []string
	if privileged {
		a = append(a, "--privileged")
	} else {
		a = append(a,
			"--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
			"--security-opt", "systempaths=unconfined")
	}
	a = append(a,
		"--security-opt", "seccomp=unconfined",
		"--security-opt", "apparmor=unconfined",
		"--tmpfs", "/run", "--tmpfs", "/run/lock", "--tmpfs", "/tmp",
		"--stop-signal", "SIGRTMIN+3",
	)
	if cgroup2 {
		a = append(a, "--cgroupns", "private")
	} else {
		a = append(a, "--cgroupns", "host", "--volume", "/sys/fs/cgroup:/sys/fs/cgroup:rw")
	}
	if kmsg {
		a = append(a, "--device", "/dev/kmsg")
	}
	if modules {
		a = append(a, "--volume", "/lib/modules:/lib/modules:ro")
	}
	return a
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// waitSSHD waits until node n's sshd runs with its own host keys.
func (p *Provider) waitSSHD(ctx context.Context, lab *labfile.Lab, n *labfile.Node) error {
	name := ContainerName(lab, n)
	ctx, cancel := context.WithTimeout(ctx, p.bootTimeout)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		_, err := p.cli.Run(ctx, "exec", name, "sh", "-c",
			"test -s /etc/ssh/ssh_host_ed25519_key.pub && systemctl is-active --quiet ssh.service")
		if err == nil {
			return nil
		}
		last = err
		c, ierr := p.inspect(ctx, name)
		if ierr == nil && c != nil && c.State.Status != "running" {
			logs, _ := p.cli.Run(context.WithoutCancel(ctx), "logs", "--tail", "20", name)
			return fmt.Errorf("%s: container stopped while booting (%s); last output:\n%s", n.Name, c.State.Status, logs)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: sshd not running after %v: %w", n.Name, p.bootTimeout, last)
		case <-tick.C:
		}
	}
}

// authorizeScript adds its second argument, a public key, to the
// authorized_keys of the user its first names.
//
//go:embed authorize.sh
var authorizeScript string

// authorize adds the lab's public key to user's authorized_keys on a node.
func (p *Provider) authorize(ctx context.Context, container, user, pub string) error {
	if _, err := p.cli.Run(ctx, "exec", container, "sh", "-c", authorizeScript, "sh", user, pub); err != nil {
		return fmt.Errorf("%s: authorise lab key for %s: %w", container, user, err)
	}
	return nil
}

// Nodes reports the lab's nodes from the containers Docker has, reading
// the host keys of running ones through docker exec.
func (p *Provider) Nodes(ctx context.Context, lab *labfile.Lab) ([]provider.NodeInfo, error) {
	out, err := p.cli.Run(ctx, "ps", "--all", "--filter", "label="+LabelLab+"="+lab.Metadata.Name,
		"--format", `{{.Label "`+LabelNode+`"}}	{{.State}}`)
	if err != nil {
		return nil, fmt.Errorf("list nodes of lab %s: %w", lab.Metadata.Name, err)
	}
	states := map[string]provider.State{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		node, state, ok := strings.Cut(line, "\t")
		if !ok {
			continue
		}
		states[node] = provider.StateStopped
		if state == "running" {
			states[node] = provider.StateRunning
		}
	}

	infos := make([]provider.NodeInfo, len(lab.Nodes))
	errs := make([]error, len(lab.Nodes))
	var wg sync.WaitGroup
	for i := range lab.Nodes {
		n := &lab.Nodes[i]
		host, port, user := lab.SSHTarget(n)
		infos[i] = provider.NodeInfo{Name: n.Name, State: provider.StateMissing, Host: host, Port: port, User: user}
		if s, ok := states[n.Name]; ok {
			infos[i].State = s
			infos[i].KeyFile = p.KeyFile()
		}
		if infos[i].State != provider.StateRunning {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			infos[i].HostKeys, errs[i] = p.hostKeys(ctx, ContainerName(lab, n))
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return infos, nil
}

// hostKeys reads a node's SSH host public keys out of band. A node that
// has not made its keys yet has none.
func (p *Provider) hostKeys(ctx context.Context, container string) ([]string, error) {
	out, err := p.cli.Run(ctx, "exec", container, "sh", "-c", "cat /etc/ssh/ssh_host_*_key.pub 2>/dev/null || true")
	if err != nil {
		return nil, fmt.Errorf("%s: read host keys: %w", container, err)
	}
	var keys []string
	rest := out
	for len(rest) > 0 {
		var k ssh.PublicKey
		k, _, _, rest, err = ssh.ParseAuthorizedKey(rest)
		if err != nil {
			break // no more keys
		}
		keys = append(keys, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))))
	}
	sort.Strings(keys)
	return keys, nil
}

// Delete removes every container, volume and network labelled with the
// lab's name, and nothing else.
func (p *Provider) Delete(ctx context.Context, lab *labfile.Lab) error {
	filter := "label=" + LabelLab + "=" + lab.Metadata.Name
	steps := []struct {
		what string
		list []string
		rm   []string
	}{
		{"containers", []string{"ps", "--all", "--quiet", "--filter", filter}, []string{"rm", "--force", "--volumes"}},
		{"volumes", []string{"volume", "ls", "--quiet", "--filter", filter}, []string{"volume", "rm", "--force"}},
		{"networks", []string{"network", "ls", "--quiet", "--filter", filter}, []string{"network", "rm"}},
	}
	for _, s := range steps {
		out, err := p.cli.Run(ctx, s.list...)
		if err != nil {
			return fmt.Errorf("list %s of lab %s: %w", s.what, lab.Metadata.Name, err)
		}
		ids := strings.Fields(string(out))
		if len(ids) == 0 {
			continue
		}
		if _, err := p.cli.Run(ctx, append(s.rm, ids...)...); err != nil {
			return fmt.Errorf("delete %s of lab %s: %w", s.what, lab.Metadata.Name, err)
		}
	}
	// With the kubelets gone, the host's settings they changed go back.
	return p.restoreHostSysctls()
}
