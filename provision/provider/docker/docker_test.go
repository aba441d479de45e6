package docker_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/labctl/lab/provision/labfile"
	"github.com/labctl/lab/provision/provider"
	"github.com/labctl/lab/provision/provider/docker"
	"github.com/labctl/lab/provision/provider/docker/dockercli"
	"github.com/labctl/lab/provision/provider/docker/dockertest"
)

// TestLifecycle creates a real two-node lab, reaches both nodes over SSH
// with pinned host keys, runs keepalived in one, re-creates it without
// change, restarts a stopped node, and deletes it without touching
// anyone else's containers.
func TestLifecycle(t *testing.T) {
	cli := dockertest.Docker(t)
	image := dockertest.NodeImage(t, cli)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	name := "t" + randHex(t, 4)
	subnet := freeSubnet(t, ctx, cli)
	addr := func(host int) string {
		a := subnet.Addr().As4()
		a[3] = byte(host)
		return netip.AddrFrom4(a).String()
	}
	lab, _, err := labfile.Parse(name+".yaml", []byte(fmt.Sprintf(`apiVersion: lab/v1alpha1
kind: Lab
metadata: {name: %s}
provider: {type: docker, docker: {image: %s}}
networks:
  - {name: lab, cidr: %s}
nodes:
  - {name: n1, roles: [control-plane], addresses: {lab: %s}}
  - {name: n2, roles: [worker], addresses: {lab: %s}}
`, name, image, subnet, addr(11), addr(12))))
	if err != nil {
		t.Fatal(err)
	}

	// Bystanders: a container of another lab whose name starts with ours,
	// and one lab knows nothing about. Delete must leave both.
	others := []string{
		run(t, ctx, cli, "create", "--label", docker.LabelLab+"="+name+"x", image),
		run(t, ctx, cli, "create", image),
	}
	t.Cleanup(func() { cli.Run(context.Background(), append([]string{"rm", "-f"}, others...)...) })

	p, err := docker.New(docker.Options{StateDir: t.TempDir(), Docker: cli})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Delete(context.Background(), lab); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})

	start := time.Now()
	if err := p.Create(ctx, lab); err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Logf("Create of 2 nodes (containers, boot, sshd, key): %v", time.Since(start))

	nodes := nodeMap(t, ctx, p, lab)
	for _, n := range []string{"n1", "n2"} {
		ni := nodes[n]
		if ni.State != provider.StateRunning || len(ni.HostKeys) == 0 || ni.KeyFile == "" {
			t.Fatalf("%s: %+v", n, ni)
		}
		// systemd is PID 1 and every unit started.
		c := docker.ContainerName(lab, lab.Node(n))
		if comm := strings.TrimSpace(run(t, ctx, cli, "exec", c, "cat", "/proc/1/comm")); comm != "systemd" {
			t.Errorf("%s: PID 1 is %q, want systemd", n, comm)
		}
		state, _ := cli.Run(ctx, "exec", c, "systemctl", "is-system-running", "--wait")
		if s := strings.TrimSpace(string(state)); s != "running" {
			failed, _ := cli.Run(ctx, "exec", c, "systemctl", "--failed", "--no-legend")
			t.Errorf("%s: system is %q, want running; failed units:\n%s", n, s, failed)
		}
	}
	if slices.Equal(nodes["n1"].HostKeys, nodes["n2"].HostKeys) {
		t.Errorf("n1 and n2 share host keys %v", nodes["n1"].HostKeys)
	}
	if fi, err := os.Stat(nodes["n1"].KeyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("client key %s: %v, %v; want mode 0600", nodes["n1"].KeyFile, fi, err)
	}

	// Each node answers SSH on its static address with the host key the
	// provider pinned, takes the lab's key, and is who it says it is.
	for _, n := range []string{"n1", "n2"} {
		if out := sshRun(t, nodes[n], nodes[n].HostKeys, "hostname"); out != n {
			t.Errorf("hostname on %s = %q", n, out)
		}
	}
	// The pinning is real: n2 presenting its own key fails against n1's.
	if _, err := dialSSH(nodes["n2"], nodes["n1"].HostKeys); err == nil {
		t.Error("SSH to n2 succeeded while trusting only n1's host keys")
	}

	// Keepalived runs in a node and takes a VIP (the VIP phase needs
	// NET_ADMIN and raw sockets in the container).
	vip := addr(100)
	n1 := docker.ContainerName(lab, lab.Node("n1"))
	conf := fmt.Sprintf(`vrrp_instance lab {
  state MASTER
  interface eth0
  virtual_router_id 77
  priority 150
  advert_int 1
  virtual_ipaddress {
    %s/32
  }
}
`, vip)
	run(t, ctx, cli, "exec", n1, "sh", "-c", `printf '%s' "$1" >/etc/keepalived/keepalived.conf && systemctl restart keepalived`, "-", conf)
	waitFor(t, ctx, "keepalived on n1 to hold "+vip, func() bool {
		out, err := cli.Run(ctx, "exec", n1, "ip", "-o", "addr", "show", "dev", "eth0")
		return err == nil && strings.Contains(string(out), " "+vip+"/32 ")
	})
	n2 := docker.ContainerName(lab, lab.Node("n2"))
	run(t, ctx, cli, "exec", n2, "ping", "-c", "1", "-W", "5", vip)

	// A second Create keeps the same containers and authorises the key once.
	before := containerIDs(t, ctx, cli, name)
	if err := p.Create(ctx, lab); err != nil {
		t.Fatalf("second Create: %v", err)
	}
	if after := containerIDs(t, ctx, cli, name); !slices.Equal(before, after) {
		t.Errorf("second Create replaced containers: %v -> %v", before, after)
	}
	if keys := run(t, ctx, cli, "exec", n1, "cat", "/root/.ssh/authorized_keys"); strings.Count(keys, "lab-"+name) != 1 {
		t.Errorf("authorized_keys after two Creates:\n%s", keys)
	}

	// A stopped node is reported as such and started again by Create,
	// keeping its host keys.
	run(t, ctx, cli, "stop", n2)
	if s := nodeMap(t, ctx, p, lab)["n2"].State; s != provider.StateStopped {
		t.Errorf("stopped n2 reported %s", s)
	}
	start = time.Now()
	if err := p.Create(ctx, lab); err != nil {
		t.Fatalf("Create after stop: %v", err)
	}
	t.Logf("restart of a stopped node to sshd: %v", time.Since(start))
	again := nodeMap(t, ctx, p, lab)["n2"]
	if !slices.Equal(again.HostKeys, nodes["n2"].HostKeys) {
		t.Errorf("n2's host keys changed across a restart: %v -> %v", nodes["n2"].HostKeys, again.HostKeys)
	}
	sshRun(t, again, again.HostKeys, "true")

	// Delete removes this lab's containers, volumes and network, and
	// nothing else.
	if err := p.Delete(ctx, lab); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	filter := "label=" + docker.LabelLab + "=" + name
	for _, list := range [][]string{
		{"ps", "-aq", "--filter", filter},
		{"volume", "ls", "-q", "--filter", filter},
		{"network", "ls", "-q", "--filter", filter},
	} {
		if out := run(t, ctx, cli, list...); strings.TrimSpace(out) != "" {
			t.Errorf("after Delete, docker %v still lists %s", list, out)
		}
	}
	for _, id := range others {
		if _, err := cli.Run(ctx, "container", "inspect", id); err != nil {
			t.Errorf("Delete removed a container that is not the lab's: %v", err)
		}
	}
	for n, ni := range nodeMap(t, ctx, p, lab) {
		if ni.State != provider.StateMissing {
			t.Errorf("%s after Delete: %s", n, ni.State)
		}
	}
	if err := p.Delete(ctx, lab); err != nil {
		t.Errorf("second Delete: %v", err)
	}
}

// TestCreateRefusesChangedNode proves Create does not silently replace a
// node whose addresses changed in the lab file.
func TestCreateRefusesChangedNode(t *testing.T) {
	cli := dockertest.Docker(t)
	image := dockertest.NodeImage(t, cli)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	name := "t" + randHex(t, 4)
	subnet := freeSubnet(t, ctx, cli)
	mk := func(host int) *labfile.Lab {
		a := subnet.Addr().As4()
		a[3] = byte(host)
		lab, _, err := labfile.Parse("x.yaml", []byte(fmt.Sprintf(`apiVersion: lab/v1alpha1
kind: Lab
metadata: {name: %s}
provider: {type: docker, docker: {image: %s}}
networks: [{name: lab, cidr: %s}]
nodes: [{name: n1, roles: [control-plane], addresses: {lab: %s}}]
`, name, image, subnet, netip.AddrFrom4(a))))
		if err != nil {
			t.Fatal(err)
		}
		return lab
	}
	p, err := docker.New(docker.Options{StateDir: t.TempDir(), Docker: cli})
	if err != nil {
		t.Fatal(err)
	}
	lab := mk(11)
	t.Cleanup(func() { p.Delete(context.Background(), lab) })
	if err := p.Create(ctx, lab); err != nil {
		t.Fatal(err)
	}
	err = p.Create(ctx, mk(12))
	if err == nil || !strings.Contains(err.Error(), "lab down") {
		t.Fatalf("Create with a changed address: err = %v, want a refusal naming lab down", err)
	}
}

func randHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// freeSubnet picks a /24 under 10.251.0.0/16 that no Docker network uses.
func freeSubnet(t *testing.T, ctx context.Context, cli *dockercli.CLI) netip.Prefix {
	t.Helper()
	ids := strings.Fields(run(t, ctx, cli, "network", "ls", "-q"))
	var used []netip.Prefix
	if len(ids) > 0 {
		var nets []struct {
			IPAM struct{ Config []struct{ Subnet string } }
		}
		if err := json.Unmarshal([]byte(run(t, ctx, cli, append([]string{"network", "inspect"}, ids...)...)), &nets); err != nil {
			t.Fatal(err)
		}
		for _, n := range nets {
			for _, c := range n.IPAM.Config {
				if p, err := netip.ParsePrefix(c.Subnet); err == nil {
					used = append(used, p)
				}
			}
		}
	}
	b := make([]byte, 1)
	rand.Read(b)
	for i := 0; i < 256; i++ {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 251, b[0] + byte(i), 0}), 24)
		if !slices.ContainsFunc(used, p.Overlaps) {
			return p
		}
	}
	t.Fatal("no free /24 in 10.251.0.0/16")
	return netip.Prefix{}
}

func run(t *testing.T, ctx context.Context, cli *dockercli.CLI, args ...string) string {
	t.Helper()
	out, err := cli.Run(ctx, args...)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

func nodeMap(t *testing.T, ctx context.Context, p *docker.Provider, lab *labfile.Lab) map[string]provider.NodeInfo {
	t.Helper()
	infos, err := p.Nodes(ctx, lab)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]provider.NodeInfo{}
	for _, ni := range infos {
		m[ni.Name] = ni
	}
	return m
}

func containerIDs(t *testing.T, ctx context.Context, cli *dockercli.CLI, lab string) []string {
	ids := strings.Fields(run(t, ctx, cli, "ps", "-aq", "--no-trunc", "--filter", "label="+docker.LabelLab+"="+lab))
	slices.Sort(ids)
	return ids
}

func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

// dialSSH connects with the node's key file, trusting only pinned keys.
func dialSSH(ni provider.NodeInfo, pinned []string) (*ssh.Client, error) {
	pem, err := os.ReadFile(ni.KeyFile)
	if err != nil {
		return nil, err
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		return nil, err
	}
	var trusted []ssh.PublicKey
	var algos []string
	for _, line := range pinned {
		k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
		if err != nil {
			return nil, err
		}
		trusted = append(trusted, k)
		algos = append(algos, k.Type())
	}
	cfg := &ssh.ClientConfig{
		User: ni.User,
		Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			for _, k := range trusted {
				if bytes.Equal(k.Marshal(), key.Marshal()) {
					return nil
				}
			}
			return fmt.Errorf("host key %s is not pinned", ssh.FingerprintSHA256(key))
		},
		HostKeyAlgorithms: algos,
		Timeout:           10 * time.Second,
	}
	return ssh.Dial("tcp", net.JoinHostPort(ni.Host, strconv.Itoa(ni.Port)), cfg)
}

func sshRun(t *testing.T, ni provider.NodeInfo, pinned []string, cmd string) string {
	t.Helper()
	c, err := dialSSH(ni, pinned)
	if err != nil {
		t.Fatalf("ssh %s (%s:%d): %v", ni.Name, ni.Host, ni.Port, err)
	}
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, err := s.CombinedOutput(cmd)
	if err != nil {
		t.Fatalf("ssh %s %q: %v: %s", ni.Name, cmd, err, out)
	}
	return strings.TrimSpace(string(out))
}
