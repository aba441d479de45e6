//go:build e2e

package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/labctl/lab/internal/e2etest"
	"github.com/labctl/lab/provision"
	"github.com/labctl/lab/provision/artifacts"
	"github.com/labctl/lab/provision/labfile"
	"github.com/labctl/lab/provision/provider/docker/dockertest"
	"github.com/labctl/lab/provision/provider/docker/nodeimage"
)

// ciliumVersion is the Cilium the study's later weeks run, and the Cilium
// labs in labs/ use.
const ciliumVersion = "1.18.1"

// TestCiliumLab proves Cilium built here, offline, on container nodes, with
// the Cilium labs in labs/: the study's base topology (one control plane,
// two workers) and the same with three control planes behind a VIP. Both
// replace kube-proxy with Cilium, route natively, run Hubble's relay and
// announce LoadBalancer addresses on the lab network. Judged by the agents
// themselves (cilium-dbg status, cilium-health) and by traffic: pod to pod
// across nodes, ClusterIP and DNS through Cilium's Service load balancing,
// a NodePort from the Docker host, a LoadBalancer address from the lab's
// client node, flows in Hubble; with the VIP, all of it survives the VIP
// holder's loss. Then the study's router weeks from labs/cilium-study, as
// a study member's VirtualBox files run on container nodes: a worker in a
// second subnet behind a router (week 4), and BGP between FRR on the
// router and Cilium (week 5).
func TestCiliumLab(t *testing.T) {
	// A cold Cilium build is about 15 minutes of Go on 2 cores, each lab
	// about 7 minutes with its checks.
	ctx := e2etest.Context(t, 60*time.Minute)
	restoreSysctls(t)
	cli := dockertest.Docker(t)
	image := dockertest.NodeImage(t, cli)

	set := buildSet(t, ctx)
	kubectl := kubectlOf(t, set)
	buildCiliumSet(t, ctx)

	t.Run("study", func(t *testing.T) { testStudyWeeks(t, ctx, cli, image, kubectl) })
	for _, file := range []string{"cilium-ci.yaml", "cilium-ha-ci.yaml"} {
		t.Run(strings.TrimSuffix(file, ".yaml"), func(t *testing.T) {
			l := newLabFrom(t, cli, func(name string, octet int) string {
				return labsFile(t, file, name, image, octet)
			})
			l.testCilium(t, ctx, kubectl)
		})
	}
}

// testCilium brings up a Cilium lab and checks it; see TestCiliumLab.
func (l *testLab) testCilium(t *testing.T, ctx context.Context, kubectl string) {
	opts, k := l.upReady(t, ctx, kubectl, "cilium lab")
	kubeconfig := k.kubeconfig
	// kube-proxy was never installed: Cilium alone translates Services.
	if out, err := k.run(ctx, "-n", "kube-system", "get", "daemonset", "kube-proxy", "--ignore-not-found", "-o", "name"); err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("kube-proxy daemonset: %q, %v; want none", out, err)
	}
	// The agents reach the API where the lab file's clients do: the VIP
	// in vip mode.
	host, _ := l.lab.Endpoint()
	if out, err := k.run(ctx, "-n", "kube-system", "get", "daemonset", "cilium", "-o",
		`jsonpath={.spec.template.spec.containers[0].env[?(@.name=="KUBERNETES_SERVICE_HOST")].value}`); err != nil || strings.TrimSpace(out) != host {
		t.Errorf("the agents' KUBERNETES_SERVICE_HOST: %q, %v; want %s", out, err, host)
	}

	l.checkCiliumAgents(t, ctx, k)
	l.checkPodNetwork(t, ctx, kubectl, kubeconfig)
	l.startWeb(t, ctx, k)
	l.checkNodePort(t, ctx, k, "web", 31080, l.lab.KubernetesNodes())
	l.checkHubble(t, ctx, k)
	lb := l.checkLoadBalancer(t, ctx, k, opts)

	again := &e2etest.Events{}
	opts.Report = again
	start := time.Now()
	if err := provision.Up(ctx, l.lab, opts); err != nil {
		t.Fatalf("second lab up: %v\n%s", err, again.Failures())
	}
	t.Logf("TIMING no-op cilium lab up: %v", time.Since(start).Round(time.Millisecond))
	if did := didWork(again.All()); len(did) > 0 {
		t.Errorf("second lab up did work: %v", did)
	}

	if l.lab.ControlPlane.Mode == labfile.EndpointVIP {
		holder := l.checkCiliumFailover(t, ctx, k, opts, lb)
		// Docker wrote the restarted node's /etc/hosts afresh: lab up
		// puts lab's block back there, and touches no other node.
		opts.Report = &e2etest.Events{}
		if err := provision.Up(ctx, l.lab, opts); err != nil {
			t.Fatalf("lab up after %s restarted: %v\n%s", holder, err, opts.Report.(*e2etest.Events).Failures())
		}
		for _, w := range didWork(opts.Report.(*e2etest.Events).All()) {
			if !strings.HasSuffix(w, " "+holder) {
				t.Errorf("lab up after %s restarted did work elsewhere: %s", holder, w)
			}
		}
	}
	l.checkCiliumHealth(t, ctx, k)

	// Reset audits the nodes itself: a Cilium trace left behind fails it.
	opts.Report = &e2etest.Events{}
	if err := provision.Reset(ctx, l.lab, opts); err != nil {
		t.Fatalf("lab reset: %v\n%s", err, opts.Report.(*e2etest.Events).Failures())
	}
	// That reset nodes take a new cluster is the study weeks' part:
	// week 5 comes up on the nodes week 4's reset left.
}

// upReady brings a Cilium lab up, logs how long it and each phase took
// (TIMING what), and fails unless every Kubernetes node is Ready. It
// returns the options later runs use and kubectl for the lab.
func (l *testLab) upReady(t *testing.T, ctx context.Context, kubectl, what string) (provision.Options, kube) {
	t.Helper()
	opts := provision.Options{StateRoot: l.stateRoot, Provider: l.prov, Userland: nodeimage.BaseTarball}
	ev := &e2etest.Events{}
	opts.Report = ev
	k := kube{kubectl, filepath.Join(l.stateRoot, l.name(), "admin.conf")}
	start := time.Now()
	if err := provision.Up(ctx, l.lab, opts); err != nil {
		l.logCilium(t, ctx)
		t.Fatalf("lab up: %v\n%s", err, ev.Failures())
	}
	t.Logf("TIMING %s up: %v", what, time.Since(start).Round(time.Millisecond))
	for _, p := range phaseTimes(ev.All()) {
		t.Logf("TIMING   phase %s", p)
	}
	if ready := nodesReady(t, ctx, kubectl, k.kubeconfig); len(ready) != len(l.lab.KubernetesNodes()) {
		t.Fatalf("Ready nodes %v, want all of %d", ready, len(l.lab.KubernetesNodes()))
	}
	return opts, k
}

// checkCiliumFailover stops the VIP holder: the API answers through the
// VIP again, the remaining agents keep working (a NodePort made after the
// loss is programmed on every remaining node), and the LoadBalancer
// address still answers the client, announced again if its announcer was
// lost. The holder is started again and must rejoin; it is returned.
func (l *testLab) checkCiliumFailover(t *testing.T, ctx context.Context, k kube, opts provision.Options, lb netip.Addr) (holder string) {
	t.Helper()
	holder, _, _ = l.failover(t, ctx, k.kubectl, k.kubeconfig)
	var rest []*labfile.Node
	for _, n := range l.lab.KubernetesNodes() {
		if n.Name != holder {
			rest = append(rest, n)
		}
	}
	pods := ciliumPods(t, ctx, k)
	for _, n := range rest {
		if why := waitAgentOK(ctx, k, pods[n.Name]); why != "" {
			t.Errorf("Cilium agent on %s after %s was lost: %s", n.Name, holder, why)
		}
	}
	l.checkNodePort(t, ctx, k, "web-after", 31081, rest)
	l.reachLoadBalancer(t, ctx, opts, lb)
	t.Logf("with %s gone: the agents on the other nodes report OK, program a new NodePort, and %s still answers the client", holder, lb)

	l.docker(t, ctx, "start", l.container(holder))
	l.waitRecovered(t, ctx, holder, k.kubectl, k.kubeconfig)
	return holder
}

// buildCiliumSet builds (or finds) the Cilium set the lab uses, timed.
func buildCiliumSet(t *testing.T, ctx context.Context) *artifacts.CiliumSet {
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
	set, cached, err := lay.Cache().BuildCilium(ctx, artifacts.CiliumBuildOptions{
		Version: ciliumVersion, Userland: userland, Log: testWriter{t},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("TIMING cilium build (cached=%v): %v", cached, time.Since(start).Round(time.Millisecond))
	for _, im := range set.Images {
		t.Logf("SIZE %s: %d MiB", im.Ref, im.Size>>20)
	}
	return set
}

// labsFile is the lab file labs/<file> for the e2e suite: named name, on
// the reserved subnet 10.251.<octet>.0/24 instead of its own, with the
// suite's node image. It must build the Kubernetes version and image
// repository the suite builds, and the Cilium version it builds.
func labsFile(t *testing.T, file, name, image string, octet int) string {
	t.Helper()
	path := filepath.Join("..", "..", "..", "labs", file)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	orig, _, err := labfile.Parse(path, data)
	if err != nil {
		t.Fatal(err)
	}
	if orig.Kubernetes.Version != version || orig.Kubernetes.ImageRepository != imageRepository || orig.CNI.Cilium.Version != ciliumVersion {
		t.Fatalf("%s: Kubernetes %s from %s, Cilium %s; the e2e suite builds Kubernetes %s for %s and Cilium %s",
			path, orig.Kubernetes.Version, orig.Kubernetes.ImageRepository, orig.CNI.Cilium.Version, version, imageRepository, ciliumVersion)
	}
	prefix := netip.MustParsePrefix(orig.NodeNetworkDef().CIDR)
	if prefix.Bits() != 24 || len(orig.Networks) != 1 {
		t.Fatalf("%s: the e2e suite moves labs with one /24 network, not %v", path, orig.Networks)
	}
	a := prefix.Addr().As4()
	from := fmt.Sprintf("%d.%d.%d.", a[0], a[1], a[2])
	text := strings.ReplaceAll(string(data), from, fmt.Sprintf("10.251.%d.", octet))
	text = strings.Replace(text, "\n  name: "+orig.Metadata.Name+"\n", "\n  name: "+name+"\n", 1)
	return strings.Replace(text, "\n    image: "+orig.Provider.Docker.Image+"\n", "\n    image: "+image+"\n", 1)
}

// ciliumPods maps each node to its Cilium agent pod.
func ciliumPods(t *testing.T, ctx context.Context, k kube) map[string]string {
	t.Helper()
	out, err := k.run(ctx, "-n", "kube-system", "get", "pods", "-l", "k8s-app=cilium", "-o",
		`jsonpath={range .items[*]}{.spec.nodeName}={.metadata.name}{"\n"}{end}`)
	if err != nil {
		t.Fatalf("list the Cilium agents: %v", err)
	}
	pods := map[string]string{}
	for _, line := range strings.Fields(out) {
		if node, pod, ok := strings.Cut(line, "="); ok {
			pods[node] = pod
		}
	}
	return pods
}

// checkCiliumAgents asks every agent itself: cilium-dbg status must say OK
// with kube-proxy replacement on.
func (l *testLab) checkCiliumAgents(t *testing.T, ctx context.Context, k kube) {
	t.Helper()
	pods := ciliumPods(t, ctx, k)
	if len(pods) != len(l.lab.KubernetesNodes()) {
		t.Fatalf("Cilium agents on %v, want one on each of the %d nodes", pods, len(l.lab.KubernetesNodes()))
	}
	for node, pod := range pods {
		if why := waitAgentOK(ctx, k, pod); why != "" {
			t.Errorf("Cilium agent on %s: %s", node, why)
			continue
		}
		t.Logf("Cilium agent on %s: status OK, kube-proxy replacement on", node)
	}
}

// checkCiliumHealth asks every agent's cilium-health: each must reach
// every node's health port. It runs after the traffic checks, which
// cover the agents' first probe rounds. Then it logs each agent's
// resident memory, for docs/performance.md.
func (l *testLab) checkCiliumHealth(t *testing.T, ctx context.Context, k kube) {
	t.Helper()
	pods := ciliumPods(t, ctx, k)
	// An agent probes every other node on its own schedule (every two
	// minutes by default; the Cilium labs ask for about 20 s), and its
	// first probe of a node may come before that node's agent listens on
	// the health port (refused). --probe does not re-probe such a node
	// at once, so this waits for the agents' own rounds: every agent must
	// see every node within a few of them.
	lacking := map[string]string{}
	ok := e2etest.WaitFor(ctx, 6*time.Minute, 5*time.Second, func() bool {
		clear(lacking)
		for node, pod := range pods {
			out, err := k.run(ctx, "-n", "kube-system", "exec", pod, "-c", "cilium-agent", "--", "cilium-health", "status", "-o", "json")
			if err != nil {
				lacking[node] = err.Error()
			} else if why := healthReachesAll(out, len(pods)); why != "" {
				lacking[node] = why
			}
		}
		return len(lacking) == 0
	})
	if !ok {
		for node, why := range lacking {
			t.Errorf("cilium-health on %s: %s", node, why)
		}
		return
	}
	t.Logf("cilium-health: every agent reaches all %d nodes", len(pods))
	for _, n := range l.lab.KubernetesNodes() {
		if out, err := l.exec(ctx, n.Name, "ps -C cilium-agent -o rss="); err == nil {
			if kib, err := strconv.Atoi(strings.TrimSpace(out)); err == nil {
				t.Logf("MEMORY cilium-agent on %s: %d MiB resident", n.Name, kib>>10)
			}
		}
	}
}

// waitAgentOK waits up to two minutes for the agent in pod to report OK
// with kube-proxy replacement on, and returns what is wrong, or "".
func waitAgentOK(ctx context.Context, k kube, pod string) string {
	var out string
	var err error
	if e2etest.WaitFor(ctx, 2*time.Minute, 2*time.Second, func() bool {
		out, err = k.run(ctx, "-n", "kube-system", "exec", pod, "-c", "cilium-agent", "--", "cilium-dbg", "status", "-o", "json")
		return err == nil && agentHealthy(out) == ""
	}) {
		return ""
	}
	if err != nil {
		return err.Error()
	}
	return agentHealthy(out)
}

// agentHealthy reads `cilium-dbg status -o json` and returns what is wrong,
// or "".
func agentHealthy(out string) string {
	var st struct {
		Cilium struct {
			State string `json:"state"`
		} `json:"cilium"`
		KubeProxyReplacement struct {
			Mode string `json:"mode"`
		} `json:"kube-proxy-replacement"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return "unreadable status: " + err.Error()
	}
	if st.Cilium.State != "Ok" {
		return "agent state " + strconv.Quote(st.Cilium.State)
	}
	if st.KubeProxyReplacement.Mode != "True" {
		return "kube-proxy replacement " + strconv.Quote(st.KubeProxyReplacement.Mode)
	}
	return ""
}

// healthReachesAll reads `cilium-health status -o json` and returns what is
// wrong, or "": every node's host must answer.
func healthReachesAll(out string, nodes int) string {
	var st struct {
		Nodes []struct {
			Name string `json:"name"`
			Host struct {
				PrimaryAddress struct {
					HTTP *struct {
						Status string `json:"status"`
					} `json:"http"`
				} `json:"primary-address"`
			} `json:"host"`
		} `json:"nodes"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return "unreadable health: " + err.Error()
	}
	if len(st.Nodes) != nodes {
		return fmt.Sprintf("%d nodes known, want %d", len(st.Nodes), nodes)
	}
	for _, n := range st.Nodes {
		if h := n.Host.PrimaryAddress.HTTP; h == nil || h.Status != "" {
			status := "no answer"
			if h != nil {
				status = h.Status
			}
			return "node " + n.Name + " does not answer: " + status
		}
	}
	return ""
}

// webNamespace holds the web pod the Service checks expose.
const webNamespace = "web"

// startWeb runs the netcheck server as pod web (label app: web) in
// webNamespace, on a worker, for the Service checks.
func (l *testLab) startWeb(t *testing.T, ctx context.Context, k kube) {
	t.Helper()
	manifest := fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata: {name: %[1]s}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: %[1]s, labels: {app: web}}
spec:
  containers:
  - name: web
    image: %[2]s
    imagePullPolicy: Never
    args: [serve, -addr, ":%[3]d"]
    readinessProbe: {tcpSocket: {port: %[3]d}, periodSeconds: 1}
`, webNamespace, netcheckRef, netcheckPort)
	// The pod network check removed its image from the nodes.
	l.importImage(t, ctx, buildNetcheckImage(t, ctx), netcheckRef)
	t.Cleanup(func() {
		k.run(context.Background(), "delete", "namespace", webNamespace, "--ignore-not-found", "--wait=false")
	})
	if out, err := e2etest.RunInput(ctx, manifest, k.kubectl, "--kubeconfig", k.kubeconfig, "apply", "-f", "-"); err != nil {
		t.Fatalf("web pod: %v\n%s", err, out)
	}
	if out, err := k.run(ctx, "-n", webNamespace, "wait", "--for=condition=Ready", "pod/web", "--timeout=2m"); err != nil {
		t.Fatalf("web pod not Ready: %v\n%s", err, out)
	}
}

// checkNodePort exposes the web pod through NodePort Service svc on port
// and connects to it from the Docker host, through each of nodes' lab
// addresses: Cilium's eBPF NodePort, not kube-proxy, must answer. (Not
// 30080: this machine's sandbox answers connections to that port itself.)
func (l *testLab) checkNodePort(t *testing.T, ctx context.Context, k kube, svc string, port int, nodes []*labfile.Node) {
	t.Helper()
	manifest := fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: %[1]s, namespace: %[2]s}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: %[3]d, nodePort: %[4]d}]
`, svc, webNamespace, netcheckPort, port)
	if out, err := e2etest.RunInput(ctx, manifest, k.kubectl, "--kubeconfig", k.kubeconfig, "apply", "-f", "-"); err != nil {
		t.Fatalf("NodePort Service %s: %v\n%s", svc, err, out)
	}
	failed := false
	for _, n := range nodes {
		addr := net.JoinHostPort(l.lab.NodeIP(n).String(), strconv.Itoa(port))
		var answer string
		ok := e2etest.WaitFor(ctx, time.Minute, time.Second, func() bool {
			answer = e2etest.NetcheckName(ctx, addr)
			return answer == "web"
		})
		if !ok {
			t.Errorf("NodePort %s from the Docker host: answer %q, want web", addr, answer)
			failed = true
		}
	}
	if !failed {
		t.Logf("NodePort %d answers from the Docker host on %d nodes", port, len(nodes))
	}
}

// checkHubble asks the relay, from an agent pod, for the flows of the
// traffic the tests made: the relay must answer with flows from the agents.
func (l *testLab) checkHubble(t *testing.T, ctx context.Context, k kube) {
	t.Helper()
	var pod string
	for _, p := range ciliumPods(t, ctx, k) {
		pod = p
		break
	}
	// The agent runs in the node's network namespace with the node's
	// resolver, which knows no Service names: the relay by ClusterIP.
	relay, err := k.run(ctx, "-n", "kube-system", "get", "service", "hubble-relay", "-o", "jsonpath={.spec.clusterIP}")
	if err != nil || net.ParseIP(strings.TrimSpace(relay)) == nil {
		t.Fatalf("the hubble-relay Service: %q, %v", relay, err)
	}
	server := net.JoinHostPort(strings.TrimSpace(relay), "80")
	var out string
	ok := e2etest.WaitFor(ctx, 2*time.Minute, 2*time.Second, func() bool {
		out, err = k.run(ctx, "-n", "kube-system", "exec", pod, "-c", "cilium-agent", "--",
			"hubble", "observe", "--server", server, "--last", "50", "-o", "json")
		return err == nil && strings.Count(out, `"flow"`) > 0
	})
	if !ok {
		t.Errorf("hubble observe through the relay: %v\n%s", err, out)
		return
	}
	t.Logf("Hubble: the relay returned %d flows", strings.Count(out, `"flow"`))
}

// logCilium logs what the agents' pods say, for a failed lab up, asked
// on the first control plane (lab up may have stopped before it wrote the
// kubeconfig here).
func (l *testLab) logCilium(t *testing.T, ctx context.Context) {
	out, _ := l.exec(ctx, l.lab.ControlPlanes()[0].Name, `k="kubectl --kubeconfig /etc/kubernetes/admin.conf -n kube-system"
$k get pods -o wide; $k describe pods -l k8s-app=cilium | tail -60; $k logs -l k8s-app=cilium --all-containers --prefix --tail 40`)
	t.Logf("Cilium on %s's API:\n%s", l.lab.ControlPlanes()[0].Name, out)
}

// checkLoadBalancer proves LB-IPAM and L2 announcements: a LoadBalancer
// Service gets an address from a CiliumLoadBalancerIPPool on the lab
// network, and the lab's client node — on that network, no Kubernetes
// node — reaches the backend through it, over lab's own SSH. The client
// must have learnt the address's MAC from the agent holding the Service's
// lease: the announcement, not Docker, answered for it.
func (l *testLab) checkLoadBalancer(t *testing.T, ctx context.Context, k kube, opts provision.Options) netip.Addr {
	t.Helper()
	const svc = "web-lb"
	prefix := netip.MustParsePrefix(l.lab.NodeNetworkDef().CIDR)
	first, last := prefix.Addr().As4(), prefix.Addr().As4()
	first[3], last[3] = 200, 209
	manifest := fmt.Sprintf(`apiVersion: cilium.io/v2
kind: CiliumLoadBalancerIPPool
metadata: {name: lab}
spec:
  blocks: [{start: %[1]s, stop: %[2]s}]
---
apiVersion: cilium.io/v2alpha1
kind: CiliumL2AnnouncementPolicy
metadata: {name: lab}
spec:
  loadBalancerIPs: true
  interfaces: ['^eth[0-9]+']
---
apiVersion: v1
kind: Service
metadata: {name: %[3]s, namespace: %[4]s}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports: [{port: 80, targetPort: %[5]d}]
`, netip.AddrFrom4(first), netip.AddrFrom4(last), svc, webNamespace, netcheckPort)
	t.Cleanup(func() {
		k.run(context.Background(), "delete", "ciliuml2announcementpolicy/lab", "ciliumloadbalancerippool/lab", "--ignore-not-found", "--wait=false")
	})
	if out, err := e2etest.RunInput(ctx, manifest, k.kubectl, "--kubeconfig", k.kubeconfig, "apply", "-f", "-"); err != nil {
		t.Fatalf("LB-IPAM pool, L2 policy and LoadBalancer Service: %v\n%s", err, out)
	}
	var ip netip.Addr
	if !e2etest.WaitFor(ctx, time.Minute, time.Second, func() bool {
		out, err := k.run(ctx, "-n", webNamespace, "get", "service", svc, "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}")
		ip, _ = netip.ParseAddr(strings.TrimSpace(out))
		return err == nil && ip.IsValid()
	}) {
		t.Fatalf("Service %s/%s got no address from the pool", webNamespace, svc)
	}
	if a := ip.As4(); !prefix.Contains(ip) || a[3] < 200 || a[3] > 209 {
		t.Fatalf("Service %s/%s got %s, not from the pool %s-%s", webNamespace, svc, ip, netip.AddrFrom4(first), netip.AddrFrom4(last))
	}

	answer := l.reachLoadBalancer(t, ctx, opts, ip)
	holder, err := k.run(ctx, "-n", "kube-system", "get", "lease", "cilium-l2announce-"+webNamespace+"-"+svc, "-o", "jsonpath={.spec.holderIdentity}")
	if err != nil {
		t.Fatalf("the Service's L2 announcement lease: %v %s", err, holder)
	}
	holder = strings.TrimSpace(holder)
	mac, err := l.exec(ctx, holder, "cat /sys/class/net/eth0/address")
	if err != nil {
		t.Fatalf("%s's MAC: %v", holder, err)
	}
	if !strings.Contains(answer, "lladdr "+strings.TrimSpace(mac)) {
		t.Errorf("the client resolved %s to %q, want %s's MAC %s (the lease holder)", ip, answer, holder, strings.TrimSpace(mac))
		return ip
	}
	t.Logf("LoadBalancer %s (LB-IPAM pool %s-%s) answers the client node over SSH; announced by %s", ip, netip.AddrFrom4(first), netip.AddrFrom4(last), holder)
	return ip
}

// reachLoadBalancer connects from the lab's client node, over lab's own
// SSH, to ip:80 until the web pod answers, and returns what the client
// printed: the answer and its neighbour entry for ip.
func (l *testLab) reachLoadBalancer(t *testing.T, ctx context.Context, opts provision.Options, ip netip.Addr) string {
	t.Helper()
	var client string
	for _, n := range l.lab.Nodes {
		if n.HasRole(labfile.RoleClient) {
			client = n.Name
			break
		}
	}
	if client == "" {
		t.Fatalf("lab %s has no client node to reach %s from", l.name(), ip)
	}
	// The script goes in on stdin: ssh joins its arguments into one
	// command line for the remote shell, which would split it again.
	ssh, err := provision.SSHCommand(ctx, l.lab, opts, client, []string{"bash", "-s"})
	if err != nil {
		t.Fatalf("ssh to client node %s: %v", client, err)
	}
	// One line from the backend, then the MAC the client resolved.
	script := fmt.Sprintf("exec 3<>/dev/tcp/%[1]s/80 && timeout 3 head -n 1 <&3; ip neigh show %[1]s\n", ip)
	var answer string
	if !e2etest.WaitFor(ctx, 2*time.Minute, 2*time.Second, func() bool {
		answer, _ = e2etest.RunInput(ctx, script, ssh[0], ssh[1:]...)
		return strings.Contains("\n"+answer, "\nweb\n")
	}) {
		t.Fatalf("LoadBalancer %s:80 from client node %s over SSH: %q, want web", ip, client, answer)
	}
	return answer
}
