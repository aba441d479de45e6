//go:build e2e

// Package cluster proves the whole promise on this machine: a lab file with
// kubernetes.artifacts: build becomes a real highly available Kubernetes
// cluster on container nodes (3 control planes behind a Keepalived +
// HAProxy VIP, 1 worker), with every binary and image built from source
// here and nothing pulled from anywhere; it survives the loss of the node
// that holds the VIP, and lab reset and lab down leave nothing behind. Its
// pods reach each other across nodes through lab's own pod network, and
// reach services by ClusterIP and by DNS name.
//
// Run: go test -tags e2e -timeout 30m ./provision/e2e/cluster
package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/labctl/lab/internal/e2etest"
	"github.com/labctl/lab/provision"
	"github.com/labctl/lab/provision/artifacts"
	"github.com/labctl/lab/provision/labfile"
	"github.com/labctl/lab/provision/provider/docker"
	"github.com/labctl/lab/provision/provider/docker/dockercli"
	"github.com/labctl/lab/provision/provider/docker/dockertest"
	"github.com/labctl/lab/provision/provider/docker/nodeimage"
	"github.com/labctl/lab/provision/workflow"
	"github.com/labctl/lab/templates/nodefiles"
)

const version = "v1.34.12"

// imageRepository is a repository no registry answers for: every image
// the cluster runs must come from the artifacts lab imported.
const imageRepository = "lab.local"

// hostSysctls are the machine-wide settings the kubelets in the nodes
// change (/proc/sys is not namespaced for them); the test puts them back.
var hostSysctls = []string{"vm/overcommit_memory", "kernel/panic", "kernel/panic_on_oops"}

func TestBuildArtifactsHACluster(t *testing.T) {
	ctx := e2etest.Context(t, 25*time.Minute)
	restoreSysctls(t)
	cli := dockertest.Docker(t)
	image := dockertest.NodeImage(t, cli)

	// 1. The artifacts, timed on their own: cold on a fresh machine,
	// from the cache afterwards.
	set := buildSet(t, ctx)
	kubectl := kubectlOf(t, set)

	l := newLab(t, cli, image)
	// The default cache, where buildSet put the Set.
	opts := provision.Options{StateRoot: l.stateRoot, Provider: l.prov, Userland: nodeimage.BaseTarball}

	// 2. lab up, phase by phase.
	ev := &e2etest.Events{}
	opts.Report = ev
	start := time.Now()
	if err := provision.Up(ctx, l.lab, opts); err != nil {
		t.Fatalf("lab up: %v\n%s", err, ev.Failures())
	}
	t.Logf("TIMING lab up: %v", time.Since(start).Round(time.Millisecond))
	for _, p := range phaseTimes(ev.All()) {
		t.Logf("TIMING   phase %s", p)
	}
	kubeconfig := filepath.Join(l.stateRoot, l.name(), "admin.conf")

	// 3. etcd: three voting members.
	members := l.etcdMembers(t, ctx, "cp1")
	if len(members) != 3 {
		t.Errorf("etcd has %d members, want 3: %+v", len(members), members)
	}
	for _, m := range members {
		if m.IsLearner {
			t.Errorf("etcd member %s is still a learner", m.Name)
		}
	}

	// 4. kubectl through the VIP: every node registered and Ready.
	server := l.kubeconfigServer(t, kubeconfig)
	if want := "https://" + l.lab.EndpointString(); server != want {
		t.Errorf("kubeconfig server %s, want the VIP endpoint %s", server, want)
	}
	ready := nodesReady(t, ctx, kubectl, kubeconfig)
	if len(ready) != 4 {
		t.Errorf("Ready nodes %v, want cp1 cp2 cp3 w1", ready)
	}

	// 5. The images really are ours: the API server's pod runs the
	// image lab built, by ID.
	l.checkImages(t, ctx, set)

	// 6. A ClusterIP service and cluster DNS (kube-proxy and CoreDNS of
	// the same build).
	l.checkDNS(t, ctx, kubectl, kubeconfig)

	// 7. The pod network as pods see it: TCP between pods on different
	// nodes through the datapath, ClusterIP services, cluster DNS.
	l.checkPodNetwork(t, ctx, kubectl, kubeconfig)

	// 8. Memory per node, from each node's own memory cgroup (docker
	// stats reads nothing for these nodes on cgroup v1).
	for _, n := range l.lab.Nodes {
		out, err := l.exec(ctx, n.Name, "cat /sys/fs/cgroup/memory/memory.usage_in_bytes; awk '$1 == \"total_rss\" {print $2}' /sys/fs/cgroup/memory/memory.stat")
		if f := strings.Fields(out); err == nil && len(f) == 2 {
			usage, _ := strconv.ParseInt(f[0], 10, 64)
			rss, _ := strconv.ParseInt(f[1], 10, 64)
			t.Logf("MEMORY %s: %d MiB in use (%d MiB resident, the rest page cache)", n.Name, usage>>20, rss>>20)
		}
	}

	// 9. A second lab up changes nothing.
	again := &e2etest.Events{}
	opts.Report = again
	start = time.Now()
	if err := provision.Up(ctx, l.lab, opts); err != nil {
		t.Fatalf("second lab up: %v\n%s", err, again.Failures())
	}
	t.Logf("TIMING no-op lab up: %v", time.Since(start).Round(time.Millisecond))
	if did := didWork(again.All()); len(did) > 0 {
		t.Errorf("second lab up did work: %v", did)
	}

	// 9b. What `lab render` shows is what the nodes hold, byte for byte
	// and mode for mode, placeholder lines aside.
	l.checkRendered(t, ctx)

	// 10. Failover: stop the container holding the VIP; the API answers
	// through the VIP again and etcd keeps quorum. LAB_FAILOVER_RUNS
	// repeats it (default once), each time after the stopped node is back
	// and healthy, for the figures in docs/performance.md.
	runs := e2etest.EnvInt(t, "LAB_FAILOVER_RUNS", 1)
	var failed, afterGone []time.Duration
	for i := range runs {
		holder, outage, back := l.failover(t, ctx, kubectl, kubeconfig)
		failed, afterGone = append(failed, outage), append(afterGone, back)

		// 11. Bring the node back: on the last run before lab reset,
		// otherwise until it serves again.
		l.docker(t, ctx, "start", l.container(holder))
		if err := l.prov.Create(ctx, l.lab); err != nil { // waits for its sshd
			t.Fatal(err)
		}
		if i < runs-1 {
			l.waitRecovered(t, ctx, holder, kubectl, kubeconfig)
		}
	}
	if runs > 1 {
		sort.Slice(failed, func(i, j int) bool { return failed[i] < failed[j] })
		sort.Slice(afterGone, func(i, j int) bool { return afterGone[i] < afterGone[j] })
		t.Logf("TIMING failover over %d runs: kubectl answered again median %v, worst %v after the node was gone; requests failed for median %v, worst %v in all",
			runs, afterGone[runs/2].Round(time.Millisecond), afterGone[runs-1].Round(time.Millisecond),
			failed[runs/2].Round(time.Millisecond), failed[runs-1].Round(time.Millisecond))
	}

	// 12. lab reset must audit clean and lab down remove everything.
	opts.Report = &e2etest.Events{}
	if err := provision.Reset(ctx, l.lab, opts); err != nil {
		t.Fatalf("lab reset: %v\n%s", err, opts.Report.(*e2etest.Events).Failures())
	}
	if err := provision.Down(ctx, l.lab, opts); err != nil {
		t.Fatalf("lab down: %v", err)
	}
	left := l.docker(t, ctx, "ps", "-a", "--filter", "label="+docker.LabelLab+"="+l.name(), "--format", "{{.Names}}")
	left += l.docker(t, ctx, "network", "ls", "--filter", "label="+docker.LabelLab+"="+l.name(), "--format", "{{.Name}}")
	left += l.docker(t, ctx, "volume", "ls", "--filter", "label="+docker.LabelLab+"="+l.name(), "--format", "{{.Name}}")
	if strings.TrimSpace(left) != "" {
		t.Errorf("lab down left: %s", left)
	}
}

// testLab is the test's lab: its own name, subnet and state directory.
type testLab struct {
	t         *testing.T
	cli       *dockercli.CLI
	lab       *labfile.Lab
	stateRoot string
	prov      *docker.Provider
}

// newLab reserves a free 10.251.X.0/24 subnet by creating the lab's
// network up front (Docker refuses overlapping subnets atomically) and
// registers the deletion of everything the lab makes.
func newLab(t *testing.T, cli *dockercli.CLI, image string) *testLab {
	return newLabFrom(t, cli, func(name string, octet int) string { return labYAML(name, image, octet) })
}

// newLabFrom is newLab with the lab file lab returns for the lab's name
// and the third octet of its reserved subnet.
func newLabFrom(t *testing.T, cli *dockercli.CLI, lab func(name string, octet int) string) *testLab {
	t.Helper()
	ctx := e2etest.Context(t, time.Minute)
	l := &testLab{t: t, cli: cli, stateRoot: t.TempDir()}
	labName := "e2ec-" + e2etest.RandomHex(t, 3)
	prov, err := docker.New(docker.Options{StateDir: filepath.Join(l.stateRoot, labName), Docker: cli})
	if err != nil {
		t.Fatal(err)
	}
	l.prov = prov
	t.Cleanup(l.teardown)
	e2etest.ReserveSubnet(t, ctx, cli, "10.251", func(octet int) *labfile.Lab {
		parsed, _, err := labfile.Parse(labName+".yaml", []byte(lab(labName, octet)))
		if err != nil {
			t.Fatal(err)
		}
		l.lab = parsed
		return parsed
	})
	return l
}

// buildSet returns the build source's Set for the tests' version and
// image repository: built on a fresh machine, from the cache afterwards.
func buildSet(t *testing.T, ctx context.Context) *artifacts.Set {
	t.Helper()
	lay, err := artifacts.NewLayout("")
	if err != nil {
		t.Fatal(err)
	}
	userland, err := nodeimage.BaseTarball(lay.NodeImageDir())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	set, cached, err := lay.Cache().Build(ctx, artifacts.BuildOptions{
		Version: version, ImageRepository: imageRepository, Userland: userland, Log: testWriter{t},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("TIMING artifacts build (cached=%v): %v", cached, time.Since(start).Round(time.Millisecond))
	return set
}

// kubectlOf writes the Set's kubectl where this machine can run it (the
// cache keeps blobs without the executable bit).
func kubectlOf(t *testing.T, set *artifacts.Set) string {
	t.Helper()
	kubectl := filepath.Join(t.TempDir(), "kubectl")
	data, err := os.ReadFile(set.Path(set.Binary("kubectl").Digest))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kubectl, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return kubectl
}

func labYAML(name, image string, octet int) string {
	return fmt.Sprintf(`apiVersion: lab/v1alpha1
kind: Lab
metadata:
  name: %[1]s
provider:
  type: docker
  docker:
    image: %[2]s
networks:
  - name: lab
    cidr: 10.251.%[3]d.0/24
kubernetes:
  version: %[4]s
  artifacts: build
  imageRepository: %[5]s
controlPlane:
  mode: vip
  vip: 10.251.%[3]d.10
cni:
  type: builtin
nodes:
  - name: cp1
    roles: [control-plane]
    addresses: {lab: 10.251.%[3]d.11}
  - name: cp2
    roles: [control-plane]
    addresses: {lab: 10.251.%[3]d.12}
  - name: cp3
    roles: [control-plane]
    addresses: {lab: 10.251.%[3]d.13}
  - name: w1
    roles: [worker]
    addresses: {lab: 10.251.%[3]d.21}
`, name, image, octet, version, imageRepository)
}

func (l *testLab) name() string { return l.lab.Metadata.Name }

func (l *testLab) container(node string) string {
	return docker.ContainerName(l.lab, l.lab.Node(node))
}

// teardown deletes the lab's containers, volumes and networks, pass or
// fail; on failure it first logs the kubelets' last words.
func (l *testLab) teardown() {
	if l.lab == nil {
		return // the lab file did not parse: nothing was made
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if l.t.Failed() {
		for _, n := range l.lab.Nodes {
			out, _ := l.cli.Run(ctx, "exec", l.container(n.Name), "journalctl", "--no-pager", "-n", "30", "-u", "kubelet", "-u", "lab-node")
			l.t.Logf("%s: journal:\n%s", n.Name, out)
		}
	}
	if err := l.prov.Delete(ctx, l.lab); err != nil {
		l.t.Errorf("cleanup of lab %s: %v", l.name(), err)
	}
}

// exec runs a shell script in node's container as root.
func (l *testLab) exec(ctx context.Context, node, script string) (string, error) {
	return e2etest.Exec(ctx, l.cli, l.container(node), script)
}

// checkRendered compares every file `lab render` shows for every node with
// the node's own copy: same mode, same lines, but for lines that carry a
// placeholder for a credential only lab up learns.
func (l *testLab) checkRendered(t *testing.T, ctx context.Context) {
	t.Helper()
	rendered, err := provision.Render(l.lab, nil)
	if err != nil {
		t.Fatal(err)
	}
	files := 0
	for _, r := range rendered {
		for _, g := range r.Groups {
			for _, f := range g.Files {
				files++
				out, err := l.exec(ctx, r.Node, "stat -c %a "+f.Path+" && cat "+f.Path)
				if err != nil {
					t.Errorf("%s: %s (phase %s) is rendered but not on the node: %v", r.Node, f.Path, g.Phase, err)
					continue
				}
				mode, have, _ := strings.Cut(out, "\n")
				if want := fmt.Sprintf("%o", f.Mode.Perm()); mode != want {
					t.Errorf("%s: %s has mode %s, rendered %s", r.Node, f.Path, mode, want)
				}
				wantLines, haveLines := strings.Split(string(f.Content), "\n"), strings.Split(have, "\n")
				if len(wantLines) != len(haveLines) {
					t.Errorf("%s: %s has %d lines, rendered %d", r.Node, f.Path, len(haveLines), len(wantLines))
					continue
				}
				for i := range wantLines {
					if wantLines[i] != haveLines[i] && !nodefiles.IsPlaceholderLine(wantLines[i]) {
						t.Errorf("%s: %s line %d differs from lab render:\n node:   %q\n render: %q", r.Node, f.Path, i+1, haveLines[i], wantLines[i])
						break
					}
				}
			}
		}
	}
	if files == 0 {
		t.Fatal("lab render showed no files")
	}
	t.Logf("lab render matches %d files on %d nodes", files, len(rendered))
}

// docker runs a docker command on the lab's daemon.
func (l *testLab) docker(t *testing.T, ctx context.Context, args ...string) string {
	t.Helper()
	return e2etest.Docker(t, ctx, l.cli, args...)
}

// failover stops the container holding the VIP while kubectl polls
// through the VIP, from the moment the stop begins (systemd in the node
// shuts its services down, keepalived among them) until it answers again
// after the node is gone. It returns the node, how long requests failed in
// all, and how soon kubectl answered once the node was gone (docker stop
// returned: how long the node's own shutdown takes is systemd's and
// docker's business, up to docker's 10 s grace); etcd must
// keep quorum.
func (l *testLab) failover(t *testing.T, ctx context.Context, kubectl, kubeconfig string) (holder string, outage, afterGone time.Duration) {
	t.Helper()
	holder = l.vipHolder(t, ctx)
	t.Logf("VIP holder: %s", holder)
	stopErr := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := l.cli.Run(ctx, "stop", l.container(holder))
		stopErr <- err
	}()
	var stopped time.Duration
	var failedAt time.Time
	var lastErr error
	ok := e2etest.WaitFor(ctx, 2*time.Minute, 100*time.Millisecond, func() bool {
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, lastErr = e2etest.Run(c, kubectl, "--kubeconfig", kubeconfig, "--request-timeout", "1s", "get", "nodes")
		now := time.Now()
		if lastErr != nil && failedAt.IsZero() {
			failedAt = now
		}
		if lastErr == nil && !failedAt.IsZero() {
			outage += now.Sub(failedAt)
			failedAt = time.Time{}
		}
		if stopped == 0 {
			select {
			case err := <-stopErr:
				if err != nil {
					t.Fatalf("docker stop %s: %v", holder, err)
				}
				stopped = now.Sub(start)
				return false // the next answer must come after the node is gone
			default:
			}
		}
		return stopped > 0 && lastErr == nil
	})
	if !ok {
		t.Fatalf("kubectl get nodes through the VIP failed for 2 minutes after stopping %s: %v", holder, lastErr)
	}
	answered := time.Since(start)
	afterGone = answered - stopped
	t.Logf("TIMING failover seen by kubectl: requests failed for %v in all; answered again %v after %s was gone (docker stop took %v; %v after it began)",
		outage.Round(time.Millisecond), afterGone.Round(time.Millisecond), holder, stopped.Round(time.Millisecond), answered.Round(time.Millisecond))
	survivor := "cp1"
	if holder == "cp1" {
		survivor = "cp2"
	}
	if health := l.etcdHealth(t, ctx, survivor); !strings.Contains(health, `"health":"true"`) {
		t.Errorf("etcd on %s after losing %s: %s", survivor, holder, health)
	}
	return holder, outage, afterGone
}

// waitRecovered waits until a control plane that was stopped and started
// again serves: its etcd healthy, HAProxy and Keepalived running, and
// every node Ready through the VIP.
func (l *testLab) waitRecovered(t *testing.T, ctx context.Context, node, kubectl, kubeconfig string) {
	t.Helper()
	var why string
	ok := e2etest.WaitFor(ctx, 4*time.Minute, time.Second, func() bool {
		if out, err := l.exec(ctx, node, etcdCurl+"https://127.0.0.1:2379/health"); err != nil || !strings.Contains(out, `"health":"true"`) {
			why = "etcd: " + out
			return false
		}
		if out, err := l.exec(ctx, node, "systemctl is-active haproxy keepalived"); err != nil {
			why = "services: " + out
			return false
		}
		c, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		out, err := e2etest.Run(c, kubectl, "--kubeconfig", kubeconfig, "get", "nodes", "-o",
			`jsonpath={range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{" "}{end}`)
		if err != nil || strings.Count(out, "True") != len(l.lab.KubernetesNodes()) {
			why = fmt.Sprintf("nodes Ready: %q %v", out, err)
			return false
		}
		return true
	})
	if !ok {
		t.Fatalf("%s did not recover within 4 minutes: %s", node, why)
	}
}

type etcdMember struct {
	Name      string `json:"name"`
	IsLearner bool   `json:"isLearner"`
}

// etcdCurl asks the local etcd of node through its gRPC gateway, with
// kubeadm's healthcheck client certificate.
const etcdCurl = "curl -sS --max-time 5 --cacert /etc/kubernetes/pki/etcd/ca.crt --cert /etc/kubernetes/pki/etcd/healthcheck-client.crt --key /etc/kubernetes/pki/etcd/healthcheck-client.key "

func (l *testLab) etcdMembers(t *testing.T, ctx context.Context, node string) []etcdMember {
	t.Helper()
	out, err := l.exec(ctx, node, etcdCurl+"-X POST -d '{}' https://127.0.0.1:2379/v3/cluster/member/list")
	if err != nil {
		t.Fatalf("etcd member list on %s: %v", node, err)
	}
	var resp struct{ Members []etcdMember }
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		t.Fatalf("etcd member list on %s: %v: %s", node, err, out)
	}
	return resp.Members
}

func (l *testLab) etcdHealth(t *testing.T, ctx context.Context, node string) string {
	t.Helper()
	var out string
	e2etest.WaitFor(ctx, time.Minute, time.Second, func() bool {
		out, _ = l.exec(ctx, node, etcdCurl+"https://127.0.0.1:2379/health")
		return strings.Contains(out, `"health":"true"`)
	})
	return out
}

func (l *testLab) kubeconfigServer(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if s, ok := strings.CutPrefix(strings.TrimSpace(line), "server: "); ok {
			return s
		}
	}
	t.Fatalf("%s names no server", path)
	return ""
}

// nodesReady lists the Ready nodes kubectl sees through kubeconfig.
func nodesReady(t *testing.T, ctx context.Context, kubectl, kubeconfig string) []string {
	t.Helper()
	out, err := e2etest.Run(ctx, kubectl, "--kubeconfig", kubeconfig, "get", "nodes", "-o",
		`jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}`)
	if err != nil {
		t.Fatalf("kubectl get nodes through the VIP: %v", err)
	}
	var ready []string
	for _, line := range strings.Fields(out) {
		if name, st, _ := strings.Cut(line, "="); st == "True" {
			ready = append(ready, name)
		}
	}
	sort.Strings(ready)
	return ready
}

// checkImages proves that containerd on cp1 runs the API server from the
// image lab built (same ID) and that the kubelet pulled nothing.
func (l *testLab) checkImages(t *testing.T, ctx context.Context, set *artifacts.Set) {
	t.Helper()
	var apiserver artifacts.Image
	for _, im := range set.Images {
		if strings.Contains(im.Ref, "/kube-apiserver:") {
			apiserver = im
		}
	}
	out, err := l.exec(ctx, "cp1", "ctr -n k8s.io containers ls | grep -F "+apiserver.Ref+" | wc -l; journalctl -u kubelet --no-pager | grep -ci 'pulling image' || true")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(out)
	if len(f) != 2 || f[0] == "0" {
		t.Errorf("cp1 runs no container of %s: %q", apiserver.Ref, out)
	}
	if len(f) == 2 && f[1] != "0" {
		t.Errorf("the kubelet on cp1 pulled images (%s times)", f[1])
	}
}

// checkDNS queries CoreDNS through its ClusterIP with a small static Go
// resolver (the nodes have no DNS client) for the kubernetes service, and
// reaches the API server through that service's ClusterIP from the worker.
// The query must succeed from the node that runs a CoreDNS pod (kube-proxy's
// rules, CoreDNS and the images lab built); from the other nodes it needs
// the pod network to carry it across nodes, which is logged.
func (l *testLab) checkDNS(t *testing.T, ctx context.Context, kubectl, kubeconfig string) {
	t.Helper()
	probe := filepath.Join(t.TempDir(), "dnsprobe")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", probe, "./testdata/dnsprobe")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build dnsprobe: %v\n%s", err, out)
	}
	const remote = "/root/lab-dnsprobe"
	for _, n := range l.lab.Nodes {
		// Through docker exec: docker cp would write under the node's
		// /run and /tmp mounts, where the node cannot see it.
		f, err := os.Open(probe)
		if err != nil {
			t.Fatal(err)
		}
		out, err := l.cli.RunWithInput(ctx, f, "exec", "-i", l.container(n.Name), "sh", "-c", "cat >"+remote+" && chmod 755 "+remote)
		f.Close()
		if err != nil {
			t.Fatalf("copy dnsprobe to %s: %v\n%s", n.Name, err, out)
		}
		t.Cleanup(func() { l.exec(context.Background(), n.Name, "rm -f "+remote) })
	}
	service := netip.MustParsePrefix(l.lab.Kubernetes.ServiceSubnet).Masked().Addr()
	apiIP := service.Next()
	// kubeadm gives CoreDNS's service the tenth address of the range.
	dnsIP := service
	for range 10 {
		dnsIP = dnsIP.Next()
	}
	name := "kubernetes.default.svc." + l.lab.Kubernetes.DNSDomain
	var dnsNode string
	var out string
	var err error
	ok := e2etest.WaitFor(ctx, 3*time.Minute, 2*time.Second, func() bool {
		out, err = e2etest.Run(ctx, kubectl, "--kubeconfig", kubeconfig, "-n", "kube-system", "get", "pods", "-l", "k8s-app=kube-dns", "-o",
			`jsonpath={range .items[?(@.status.containerStatuses[0].ready==true)]}{.spec.nodeName}{"\n"}{end}`)
		if f := strings.Fields(out); err == nil && len(f) > 0 {
			dnsNode = f[0]
			return true
		}
		return false
	})
	if !ok {
		t.Fatalf("no CoreDNS pod became ready: %v %s", err, out)
	}
	ok = e2etest.WaitFor(ctx, time.Minute, 2*time.Second, func() bool {
		out, err = l.exec(ctx, dnsNode, remote+" "+dnsIP.String()+":53 "+name)
		return err == nil
	})
	if !ok || strings.TrimSpace(out) != apiIP.String() {
		t.Errorf("CoreDNS at %s, asked from %s for %s: %q %v (want %s)", dnsIP, dnsNode, name, out, err, apiIP)
	} else {
		t.Logf("DNS: %s = %s, answered by CoreDNS through %s, asked from %s", name, apiIP, dnsIP, dnsNode)
	}
	// The other nodes ask only once kube-proxy on each has the service's
	// rules: a query that finds none is lost outside the pod network.
	l.waitKubeProxy(t, ctx, dnsIP.String()+":53")
	for _, n := range l.lab.Nodes {
		if n.Name == dnsNode {
			continue
		}
		// Through the ClusterIP to a CoreDNS pod on another node: kube-proxy
		// NATs it, so the datapath must leave it to conntrack both ways.
		if out, err := l.exec(ctx, n.Name, remote+" "+dnsIP.String()+":53 "+name); err != nil || strings.TrimSpace(out) != apiIP.String() {
			t.Errorf("DNS across nodes: from %s (CoreDNS runs on %s): %q %v", n.Name, dnsNode, out, err)
		} else {
			t.Logf("DNS across nodes: from %s (CoreDNS runs on %s): %s", n.Name, dnsNode, strings.TrimSpace(out))
		}
	}
	if code, err := l.exec(ctx, "w1", "curl -sk -o /dev/null -w '%{http_code}' --max-time 5 https://"+apiIP.String()+":443/livez"); err != nil || strings.TrimSpace(code) != "200" {
		t.Errorf("the kubernetes service at %s from w1: %q %v", apiIP, code, err)
	}
}

// vipHolder is the one node whose interfaces carry the VIP.
func (l *testLab) vipHolder(t *testing.T, ctx context.Context) string {
	t.Helper()
	var holders []string
	e2etest.WaitFor(ctx, 30*time.Second, 200*time.Millisecond, func() bool {
		holders = nil
		for _, n := range l.lab.Nodes {
			out, err := l.exec(ctx, n.Name, "ip -4 -o addr show")
			if err == nil && strings.Contains(out, " "+l.lab.ControlPlane.VIP+"/") {
				holders = append(holders, n.Name)
			}
		}
		return len(holders) == 1
	})
	if len(holders) != 1 {
		t.Fatalf("VIP holders: %v, want exactly one", holders)
	}
	return holders[0]
}

// restoreSysctls puts back, when the test ends, the host settings the
// nodes' kubelets change.
func restoreSysctls(t *testing.T) {
	saved := map[string][]byte{}
	for _, k := range hostSysctls {
		p := "/proc/sys/" + k
		v, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		saved[p] = v
	}
	t.Cleanup(func() {
		for p, v := range saved {
			if err := os.WriteFile(p, v, 0o644); err != nil {
				t.Errorf("restore %s: %v", p, err)
			}
		}
	})
}

// phaseTimes lists each phase of evs with how long it took.
func phaseTimes(evs []workflow.Event) []string {
	var out []string
	for _, ev := range evs {
		if ev.Kind == workflow.PhaseDone {
			out = append(out, fmt.Sprintf("%-20s %v", ev.Phase, ev.Elapsed.Round(time.Millisecond)))
		}
	}
	return out
}

// didWork lists the nodes a run changed: node-done events (work done,
// not skipped) outside the phases that only read.
func didWork(evs []workflow.Event) []string {
	var out []string
	for _, ev := range evs {
		// connect, facts, preflight and ready only read: they always run.
		if ev.Node == "" || ev.Phase == "connect" || ev.Phase == "facts" || ev.Phase == "preflight" || ev.Phase == "ready" {
			continue
		}
		if ev.Kind == workflow.NodeDone || ev.Kind == workflow.NodeFail {
			out = append(out, ev.Phase+" "+ev.Node)
		}
	}
	return out
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
