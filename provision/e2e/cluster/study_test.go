//go:build e2e

package cluster

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/labctl/lab/internal/e2etest"
	"github.com/labctl/lab/provision"
	"github.com/labctl/lab/provision/labfile"
	"github.com/labctl/lab/provision/provider/docker"
	"github.com/labctl/lab/provision/provider/docker/dockercli"
	"github.com/labctl/lab/templates"
)

// studyLab makes a lab for the study's weeks on container nodes; load
// gives it a week's file.
func studyLab(t *testing.T, cli *dockercli.CLI) *testLab {
	t.Helper()
	l := &testLab{t: t, cli: cli, stateRoot: t.TempDir()}
	name := "e2es-" + e2etest.RandomHex(t, 3)
	prov, err := docker.New(docker.Options{StateDir: filepath.Join(l.stateRoot, name), Docker: cli})
	if err != nil {
		t.Fatal(err)
	}
	l.prov = prov
	l.lab = &labfile.Lab{Metadata: labfile.Metadata{Name: name}}
	t.Cleanup(l.teardown)
	return l
}

// load makes labs/cilium-study/<file>, the VirtualBox lab a study member
// runs, the lab's file, as `lab up --provider docker` loads it: the same
// node names and addresses, on container nodes. The suite keeps the lab's
// name (so that one week follows another on the same nodes, and no
// user's lab of the same name is touched) and pins the versions it
// builds; nothing else changes.
func (l *testLab) load(t *testing.T, image, file string) {
	t.Helper()
	path := filepath.Join("..", "..", "..", "labs", "cilium-study", file)
	lab, _, err := labfile.LoadWith(path, labfile.Overrides{Provider: labfile.ProviderDocker, Set: []string{
		"metadata.name=" + l.name(),
		"provider.docker.image=" + image,
		"kubernetes.version=" + version,
		"kubernetes.imageRepository=" + imageRepository,
		"cni.cilium.version=" + ciliumVersion,
	}})
	if err != nil {
		t.Fatal(err)
	}
	l.lab = lab
}

// testStudyWeeks runs the study's router weeks on one set of container
// nodes: week 4 (testStudyRouter), then week 5 (testStudyBGP) on the nodes
// week 4's reset left, which also proves that reset nodes take a new
// cluster.
func testStudyWeeks(t *testing.T, ctx context.Context, cli *dockercli.CLI, image, kubectl string) {
	l := studyLab(t, cli)
	l.load(t, image, "4w.yaml")
	if !t.Run("4w", func(t *testing.T) { l.t = t; testStudyRouter(t, ctx, l, kubectl) }) {
		return
	}
	l.load(t, image, "5w.yaml")
	// Week 4 proved the add-ons; week 5 proves BGP, sooner without them.
	l.lab.Addons = nil
	t.Run("5w", func(t *testing.T) { l.t = t; testStudyBGP(t, ctx, l, kubectl) })
	l.t = t
}

// testStudyRouter runs the study's router week (labs/cilium-study/4w.yaml)
// on container nodes: a control plane and a worker on 192.168.10.0/24, a
// worker on 192.168.20.0/24, a router between them with two networks
// behind it. The worker in the second subnet joins across the router;
// pods on both subnets reach each other with native routing (the router
// routes each node's pod CIDR); nodes and pods reach the networks behind
// the router; the add-ons work (checkAddons, and a chart add-on from a
// directory with the lab file's values); a second lab up changes nothing,
// and one with new add-on values only upgrades that release; reset leaves
// no route.
func testStudyRouter(t *testing.T, ctx context.Context, l *testLab, kubectl string) {
	l.addChartAddon(t, "from the lab file")
	opts, k := l.upReady(t, ctx, kubectl, "study week 4 lab")
	// k8s-w0 registered with its own subnet's address.
	if out, err := k.run(ctx, "get", "node", "k8s-w0", "-o", `jsonpath={.status.addresses[?(@.type=="InternalIP")].address}`); err != nil || strings.TrimSpace(out) != "192.168.20.100" {
		t.Errorf("k8s-w0's InternalIP: %q, %v; want 192.168.20.100", out, err)
	}

	// The router routes every node's pod CIDR, from Cilium's cluster pool.
	routes, err := l.exec(ctx, "router", "cat "+templates.PodRoutesPath+"; ip -4 route show")
	if err != nil {
		t.Fatalf("router routes: %v\n%s", err, routes)
	}
	t.Logf("router:\n%s", routes)
	if n := strings.Count(routes, "172.20."); n < 2*len(l.lab.KubernetesNodes()) {
		t.Errorf("the router has %d mentions of pod CIDRs in 172.20.0.0/16, want a file line and a route per node", n)
	}
	for _, n := range []string{"k8s-ctr", "k8s-w1", "k8s-w0"} {
		out, err := l.exec(ctx, n, "ip -4 route get 10.10.1.200")
		want := "via 192.168.10.200"
		if n == "k8s-w0" {
			want = "via 192.168.20.200"
		}
		if err != nil || !strings.Contains(out, want) {
			t.Errorf("%s: ip route get 10.10.1.200: %q, %v; want %s", n, out, err, want)
		}
	}

	l.checkCiliumAgents(t, ctx, k)
	// Pods on all three nodes, two subnets: by IP, ClusterIP and DNS.
	l.checkPodNetwork(t, ctx, kubectl, k.kubeconfig)
	l.checkBehindRouter(t, ctx, k)
	l.checkAddons(t, ctx, k)
	l.checkChartAddon(t, ctx, k, "from the lab file")

	again := &e2etest.Events{}
	opts.Report = again
	start := time.Now()
	if err := provision.Up(ctx, l.lab, opts); err != nil {
		t.Fatalf("second lab up: %v\n%s", err, again.Failures())
	}
	t.Logf("TIMING no-op study week 4 lab up: %v", time.Since(start).Round(time.Millisecond))
	if did := didWork(again.All()); len(did) > 0 {
		t.Errorf("second lab up did work: %v", did)
	}

	// New values for an add-on: the addons phase alone upgrades it.
	l.setChartMessage("changed in the lab file")
	changed := &e2etest.Events{}
	opts.Report = changed
	if err := provision.Up(ctx, l.lab, opts); err != nil {
		t.Fatalf("lab up with new add-on values: %v\n%s", err, changed.Failures())
	}
	if did := didWork(changed.All()); strings.Join(did, ",") != "addons k8s-ctr" {
		t.Errorf("lab up with new add-on values did %v, want the addons phase on k8s-ctr alone", did)
	}
	l.checkChartAddon(t, ctx, k, "changed in the lab file")

	// Reset's own audit fails on a route or router interface left.
	opts.Report = &e2etest.Events{}
	if err := provision.Reset(ctx, l.lab, opts); err != nil {
		t.Fatalf("lab reset: %v\n%s", err, opts.Report.(*e2etest.Events).Failures())
	}
	if out, _ := l.exec(ctx, "router", "ip -o link show; ip -4 route show"); strings.Contains(out, "loop1") || strings.Contains(out, "172.20.") {
		t.Errorf("after reset the router still has lab's interfaces or pod routes:\n%s", out)
	}
}

// checkBehindRouter serves on the router's networks behind it (10.10.1.200
// and 10.10.2.200, the study's web server) and reaches them from every
// Kubernetes node and from a pod on every node: nodes by lab's routes,
// pods masqueraded to their node's address.
func (l *testLab) checkBehindRouter(t *testing.T, ctx context.Context, k kube) {
	t.Helper()
	bin := netcheckBinary(t, ctx)
	const remote = "/root/netcheck"
	for _, n := range append([]string{"router"}, names(l.lab.KubernetesNodes())...) {
		l.copyTo(t, ctx, n, bin, remote)
	}
	targets := []string{"10.10.1.200:80", "10.10.2.200:80"}
	for _, tg := range targets {
		if _, err := l.cli.Run(ctx, "exec", "-d", l.container("router"), remote, "serve", "-addr", tg); err != nil {
			t.Fatalf("serve on the router at %s: %v", tg, err)
		}
	}
	t.Cleanup(func() { _, _ = l.exec(context.Background(), "router", "pkill -x netcheck; rm -f "+remote) })

	get := func(where string, run func() (string, error)) {
		var out string
		var err error
		ok := e2etest.WaitFor(ctx, 30*time.Second, time.Second, func() bool {
			out, err = run()
			return err == nil && strings.Count(out, " router") == len(targets)
		})
		if !ok {
			t.Errorf("from %s, the networks behind the router: %q, %v", where, out, err)
		}
	}
	for _, n := range l.lab.KubernetesNodes() {
		get("node "+n.Name, func() (string, error) {
			return l.exec(ctx, n.Name, remote+" get -timeout 3s "+strings.Join(targets, " "))
		})
	}
	// checkPodNetwork took its image away with its pods.
	l.importImage(t, ctx, buildNetcheckImage(t, ctx), netcheckRef)
	stop := l.startNetcheck(t, ctx, k, names(l.lab.KubernetesNodes()))
	pods := netcheckPods(t, ctx, k, names(l.lab.KubernetesNodes()))
	sort.Slice(pods, func(i, j int) bool { return pods[i].name < pods[j].name })
	for _, p := range pods {
		get(fmt.Sprintf("pod %s on %s", p.name, p.node), func() (string, error) {
			return k.run(ctx, append([]string{"-n", netcheckNamespace, "exec", p.name, "--", "/netcheck", "get", "-timeout", "3s"}, targets...)...)
		})
	}
	t.Logf("the networks behind the router answer from %d nodes and %d pods", len(l.lab.KubernetesNodes()), len(pods))
	stop()
}

// names lists the nodes' names.
func names(ns []*labfile.Node) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.Name
	}
	return out
}

// testStudyBGP runs the study's BGP week (labs/cilium-study/5w.yaml) on
// container nodes: FRR on the router peers with Cilium on all three
// Kubernetes nodes, in two subnets. The router learns every node's pod
// CIDR and a LoadBalancer address over BGP and routes them (pods on both
// subnets reach each other, and the router reaches the Service), the
// nodes learn the network the router announces, a second lab up changes
// nothing, and reset stops FRR and leaves no route.
func testStudyBGP(t *testing.T, ctx context.Context, l *testLab, kubectl string) {
	opts, k := l.upReady(t, ctx, kubectl, "study week 5 lab (on week 4's reset nodes)")
	l.checkCiliumAgents(t, ctx, k)

	// Every node's session is up and the router has each pod CIDR
	// (Cilium's cluster pool, per CiliumNode) in BGP and in its kernel.
	cidrs := map[string]string{}
	out, err := k.run(ctx, "get", "ciliumnodes", "-o", `jsonpath={range .items[*]}{.metadata.name}={.spec.ipam.podCIDRs[0]}{"\n"}{end}`)
	if err != nil {
		t.Fatalf("CiliumNodes: %v\n%s", err, out)
	}
	for _, line := range strings.Fields(out) {
		if n, c, ok := strings.Cut(line, "="); ok && c != "" {
			cidrs[n] = c
		}
	}
	if len(cidrs) != len(l.lab.KubernetesNodes()) {
		t.Fatalf("pod CIDRs %v, want one per Kubernetes node", cidrs)
	}
	var bgp, kernel string
	if !e2etest.WaitFor(ctx, 2*time.Minute, 2*time.Second, func() bool {
		bgp, _ = l.exec(ctx, "router", "vtysh -c 'show bgp summary' -c 'show bgp ipv4 unicast'")
		kernel, _ = l.exec(ctx, "router", "ip -4 route show proto bgp")
		for _, c := range cidrs {
			if !strings.Contains(bgp, c) || !strings.Contains(kernel, c) {
				return false
			}
		}
		return true
	}) {
		t.Fatalf("the router has not learned every pod CIDR %v over BGP:\n%s\nkernel:\n%s", cidrs, bgp, kernel)
	}
	t.Logf("router, BGP:\n%s\nkernel routes from BGP:\n%s", bgp, kernel)
	// The router announces the network behind it to every node (Cilium
	// does not install what it receives: lab's static routes carry that
	// traffic).
	for _, n := range l.lab.BGPPeers() {
		peer, _ := l.lab.AddressFacing(l.lab.BGPRouter(), n)
		var out string
		if !e2etest.WaitFor(ctx, time.Minute, 2*time.Second, func() bool {
			out, _ = l.exec(ctx, "router", "vtysh -c 'show bgp ipv4 unicast neighbors "+peer.String()+" advertised-routes'")
			return strings.Contains(out, "10.10.1.0/24")
		}) {
			t.Errorf("the router does not announce 10.10.1.0/24 to %s (%s):\n%s", n.Name, peer, out)
		}
	}

	l.checkPodNetwork(t, ctx, kubectl, k.kubeconfig)
	l.startWeb(t, ctx, k)
	l.checkBGPLoadBalancer(t, ctx, k)

	again := &e2etest.Events{}
	opts.Report = again
	if err := provision.Up(ctx, l.lab, opts); err != nil {
		t.Fatalf("second lab up: %v\n%s", err, again.Failures())
	}
	if did := didWork(again.All()); len(did) > 0 {
		t.Errorf("second lab up did work: %v", did)
	}

	opts.Report = &e2etest.Events{}
	if err := provision.Reset(ctx, l.lab, opts); err != nil {
		t.Fatalf("lab reset: %v\n%s", err, opts.Report.(*e2etest.Events).Failures())
	}
	if out, _ := l.exec(ctx, "router", "systemctl is-active frr; pgrep -x bgpd; ip -4 route show proto bgp"); !strings.HasPrefix(strings.TrimSpace(out), "inactive") || strings.Contains(out, "172.20.") {
		t.Errorf("after reset FRR still runs on the router, or its routes stay:\n%s", out)
	}
}

// checkBGPLoadBalancer gives the web pod a LoadBalancer address from a
// pool outside every lab network: only BGP can tell the router where it
// is. The router must have it in BGP and reach it.
func (l *testLab) checkBGPLoadBalancer(t *testing.T, ctx context.Context, k kube) {
	t.Helper()
	const svc = "web-bgp"
	manifest := fmt.Sprintf(`apiVersion: cilium.io/v2
kind: CiliumLoadBalancerIPPool
metadata: {name: lab-bgp}
spec:
  blocks: [{cidr: 172.16.100.0/29}]
---
apiVersion: v1
kind: Service
metadata: {name: %[1]s, namespace: %[2]s}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports: [{port: 80, targetPort: %[3]d}]
`, svc, webNamespace, netcheckPort)
	t.Cleanup(func() {
		k.run(context.Background(), "delete", "ciliumloadbalancerippool/lab-bgp", "--ignore-not-found", "--wait=false")
	})
	if out, err := e2etest.RunInput(ctx, manifest, k.kubectl, "--kubeconfig", k.kubeconfig, "apply", "-f", "-"); err != nil {
		t.Fatalf("LB-IPAM pool and LoadBalancer Service: %v\n%s", err, out)
	}
	var ip string
	if !e2etest.WaitFor(ctx, time.Minute, time.Second, func() bool {
		out, err := k.run(ctx, "-n", webNamespace, "get", "service", svc, "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}")
		ip = strings.TrimSpace(out)
		return err == nil && strings.HasPrefix(ip, "172.16.100.")
	}) {
		t.Fatalf("Service %s/%s got no address from the pool 172.16.100.0/29", webNamespace, svc)
	}
	// The router dials it with netcheck.
	l.copyTo(t, ctx, "router", netcheckBinary(t, ctx), "/root/netcheck")
	var (
		route, answer string
		err           error
	)
	if !e2etest.WaitFor(ctx, time.Minute, 2*time.Second, func() bool {
		route, _ = l.exec(ctx, "router", "vtysh -c 'show ip route "+ip+"'")
		answer, err = l.exec(ctx, "router", "/root/netcheck get -timeout 3s "+ip+":80")
		return err == nil && strings.Contains(answer, " web") && strings.Contains(route, "bgp")
	}) {
		t.Fatalf("the router does not reach LoadBalancer %s over a BGP route: %q %v\n%s", ip, answer, err, route)
	}
	t.Logf("LoadBalancer %s: the router learned it over BGP and reaches the web pod:\n%s", ip, route)
}
