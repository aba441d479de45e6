//go:build e2e

package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/labctl/lab/internal/e2etest"
)

// netcheckRef is the image of internal/e2etest/netcheck, imported on every
// node: no registry answers for lab.local, so a pull would fail the pods.
const netcheckRef = imageRepository + "/netcheck:e2e"

// netcheckNamespace holds everything the pod network check creates, so that
// one deletion removes it.
const netcheckNamespace = "netcheck"

// netcheckPort is where netcheck serves in its pods; the services listen on
// port 80 and forward to it, so that a service answer can only have come
// through kube-proxy's translation.
const netcheckPort = 8080

// kube runs kubectl of the lab's own build against the cluster.
type kube struct{ kubectl, kubeconfig string }

// run runs kubectl. When the connection to the API failed, not the
// request (a busy lab's HAProxy drops sessions to an apiserver its checks
// marked down, a TLS handshake times out), it tries again for up to a
// minute: the tests judge the cluster, not one TCP connection.
func (k kube) run(ctx context.Context, args ...string) (string, error) {
	args = append([]string{"--kubeconfig", k.kubeconfig}, args...)
	var out string
	var err error
	e2etest.WaitFor(ctx, time.Minute, time.Second, func() bool {
		out, err = e2etest.Run(ctx, k.kubectl, args...)
		return err == nil || !apiConnectionFailed(out)
	})
	return out, err
}

// apiConnectionFailed reports whether kubectl's output says it lost or
// never had its connection to the API server: kubectl's own words, never
// what a command run with kubectl exec printed.
func apiConnectionFailed(out string) bool {
	for _, s := range []string{
		"Unable to connect to the server:",
		"unexpected error when reading response body",
		"http2: client connection lost",
		"the server is currently unable to handle the request",
	} {
		if strings.Contains(out, s) {
			return true
		}
	}
	// A session reset under load: kubectl's request to the API's URL
	// failed on the connection.
	return strings.Contains(out, "connection reset by peer") && apiRequest.MatchString(out)
}

// apiRequest is how Go's HTTP client names kubectl's failed request.
var apiRequest = regexp.MustCompile(`(Get|Post|Put|Patch|Delete) "https://[^"]+/(api|apis)/`)

// netPod is one netcheck pod: its name (the name it answers with), the node
// it is pinned to and its address.
type netPod struct{ name, node, ip string }

// probe is one connection a client pod makes and the pod that must answer
// it; want empty means any netcheck pod may (the shared service).
type probe struct {
	what   string // for messages: "pod IP", "ClusterIP", "DNS"
	target string // host:port as netcheck get dials it
	want   string
}

// checkPodNetwork proves the pod network itself, as pods see it: one
// netcheck pod on every node (control planes included), each answering
// with its own name, a ClusterIP service per pod and one in front of them
// all. From every pod it connects to every other pod by pod IP (so across
// nodes, both directions, worker to control plane and back), to the other
// pods' services by ClusterIP and by DNS name (resolved by the pod through
// its /etc/resolv.conf and CoreDNS), and to the shared service. A probe
// passes only when the expected pod answered.
func (l *testLab) checkPodNetwork(t *testing.T, ctx context.Context, kubectl, kubeconfig string) {
	t.Helper()
	start := time.Now()
	k := kube{kubectl, kubeconfig}
	archive := buildNetcheckImage(t, ctx)
	l.importImage(t, ctx, archive, netcheckRef)

	var nodes []string
	for _, n := range l.lab.KubernetesNodes() {
		nodes = append(nodes, n.Name)
	}
	stop := l.startNetcheck(t, ctx, k, nodes)
	pods := netcheckPods(t, ctx, k, nodes)
	services := netcheckServices(t, ctx, k)
	waitEndpoints(t, ctx, k, pods)
	var clusterIPs []string
	for _, ip := range services {
		clusterIPs = append(clusterIPs, ip+":80")
	}
	if l.lab.Kubernetes.KubeProxyEnabled() {
		l.waitKubeProxy(t, ctx, clusterIPs...)
	}
	t.Logf("pod network: %d netcheck pods Ready, with endpoints programmed on every node, after %v", len(pods), time.Since(start).Round(time.Millisecond))

	domain := l.lab.Kubernetes.DNSDomain
	var (
		results map[string]map[string]string // client pod → target → line
		bad     []string
		attempt int
	)
	// CoreDNS learns a new service a moment after it exists: the probes
	// are repeated until all pass or the deadline. Every failed round is
	// logged, so that a datapath that needs a second try shows.
	ok := e2etest.WaitFor(ctx, time.Minute, 2*time.Second, func() bool {
		attempt++
		results = map[string]map[string]string{}
		bad = nil
		for _, p := range pods {
			probes := probesFrom(p, pods, services, domain)
			results[p.name] = runProbes(ctx, k, p, probes)
			for _, pr := range probes {
				if msg := judge(pr, results[p.name][pr.target], pods); msg != "" {
					bad = append(bad, fmt.Sprintf("from pod %s on %s, %s %s: %s", p.name, p.node, pr.what, pr.target, msg))
				}
			}
		}
		if len(bad) > 0 {
			t.Logf("pod network, round %d: %d of the probes failed:\n  %s", attempt, len(bad), strings.Join(bad, "\n  "))
		}
		return len(bad) == 0
	})
	if !ok {
		for _, b := range bad {
			t.Errorf("pod network: %s", b)
		}
		l.logNetcheckFailure(t, k, pods)
	} else {
		n := 0
		for _, p := range pods {
			n += len(probesFrom(p, pods, services, domain))
		}
		t.Logf("pod network: all %d probes passed (round %d): pod to pod by IP across %d nodes, to ClusterIP services, by DNS name", n, attempt, len(nodes))
		for _, p := range pods {
			t.Logf("  from %s on %s:\n    %s", p.name, p.node, strings.Join(sortedLines(results[p.name]), "\n    "))
		}
	}
	t.Logf("TIMING pod network check: %v", time.Since(start).Round(time.Millisecond))
	stop()
}

// startNetcheck creates a netcheck pod pinned to each of nodes, their
// Services and the shared one, and waits until every pod is Ready:
// netcheck listens (the readiness probe connects from the node), so any
// failure after is the network's. stop deletes them; a cleanup does too,
// should the test end first (it runs before the lab's own teardown,
// registered earlier).
func (l *testLab) startNetcheck(t *testing.T, ctx context.Context, k kube, nodes []string) (stop func()) {
	t.Helper()
	manifest := filepath.Join(t.TempDir(), "netcheck.yaml")
	if err := os.WriteFile(manifest, []byte(netcheckManifest(nodes)), 0o600); err != nil {
		t.Fatal(err)
	}
	deleted := false
	stop = func() {
		if !deleted {
			deleted = true
			l.deleteNetcheck(t, k)
		}
	}
	t.Cleanup(stop)
	if out, err := k.run(ctx, "apply", "-f", manifest); err != nil {
		t.Fatalf("create the netcheck pods and services: %v\n%s", err, out)
	}
	if out, err := k.run(ctx, "-n", netcheckNamespace, "wait", "--for=condition=Ready", "pod", "-l", "app=netcheck", "--timeout=3m"); err != nil {
		desc, _ := k.run(ctx, "-n", netcheckNamespace, "describe", "pods")
		t.Fatalf("netcheck pods not Ready: %v\n%s\n%s", err, out, desc)
	}
	return stop
}

// buildNetcheckImage builds netcheck static and packs it FROM scratch.
func buildNetcheckImage(t *testing.T, ctx context.Context) string {
	t.Helper()
	bin := netcheckBinary(t, ctx)
	archive := filepath.Join(t.TempDir(), "netcheck.tar")
	if err := e2etest.ScratchImage(bin, "netcheck", netcheckRef, archive); err != nil {
		t.Fatal(err)
	}
	return archive
}

// netcheckBinary builds netcheck, static (for an image with nothing else
// in it, or a node that has none of its libraries) for this machine's
// architecture, which the container nodes share.
func netcheckBinary(t *testing.T, ctx context.Context) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "netcheck")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "github.com/labctl/lab/internal/e2etest/netcheck")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build netcheck: %v\n%s", err, out)
	}
	return bin
}

// copyTo writes the local file to remote (executable) in node's own file
// system: docker cp would write under its /run and /tmp mounts, where the
// node cannot see it.
func (l *testLab) copyTo(t *testing.T, ctx context.Context, node, local, remote string) {
	t.Helper()
	f, err := os.Open(local)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if out, err := l.cli.RunWithInput(ctx, f, "exec", "-i", l.container(node), "sh", "-c", "cat >"+remote+" && chmod 0755 "+remote); err != nil {
		t.Fatalf("copy %s to %s:%s: %v\n%s", filepath.Base(local), node, remote, err, out)
	}
}

// importImage imports a docker-archive into containerd on every node, where
// the kubelet looks for images (namespace k8s.io).
func (l *testLab) importImage(t *testing.T, ctx context.Context, archive, ref string) {
	t.Helper()
	// Into the node's own file system: docker cp would write under its
	// /run and /tmp mounts, where the node cannot see it.
	const remote = "/root/lab-netcheck.tar"
	for _, n := range l.lab.KubernetesNodes() {
		f, err := os.Open(archive)
		if err != nil {
			t.Fatal(err)
		}
		out, err := l.cli.RunWithInput(ctx, f, "exec", "-i", l.container(n.Name), "sh", "-c",
			"cat >"+remote+" && ctr -n k8s.io images import "+remote+"; rc=$?; rm -f "+remote+"; exit $rc")
		f.Close()
		if err != nil {
			t.Fatalf("import %s on %s: %v\n%s", ref, n.Name, err, out)
		}
		if out, err := l.exec(ctx, n.Name, "ctr -n k8s.io images ls -q name=="+ref); err != nil || strings.TrimSpace(out) != ref {
			t.Fatalf("containerd on %s does not list %s after the import: %q %v", n.Name, ref, out, err)
		}
	}
}

// netcheckManifest is the namespace, one netcheck pod pinned to each node
// (tolerating the control planes' NoSchedule taint), a service per pod and
// the shared service netcheck in front of all of them.
func netcheckManifest(nodes []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n", netcheckNamespace)
	for _, n := range nodes {
		fmt.Fprintf(&b, `---
apiVersion: v1
kind: Pod
metadata:
  name: netcheck-%[1]s
  namespace: %[2]s
  labels: {app: netcheck, netcheck-node: %[1]s}
spec:
  nodeName: %[1]s
  tolerations:
    - {key: node-role.kubernetes.io/control-plane, operator: Exists, effect: NoSchedule}
  automountServiceAccountToken: false
  enableServiceLinks: false
  terminationGracePeriodSeconds: 1
  containers:
    - name: netcheck
      image: %[3]s
      imagePullPolicy: Never
      args: [serve, -addr, ":%[4]d"]
      ports: [{containerPort: %[4]d}]
      readinessProbe:
        tcpSocket: {port: %[4]d}
        periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: netcheck-%[1]s
  namespace: %[2]s
spec:
  type: ClusterIP
  selector: {app: netcheck, netcheck-node: %[1]s}
  ports: [{port: 80, targetPort: %[4]d}]
`, n, netcheckNamespace, netcheckRef, netcheckPort)
	}
	fmt.Fprintf(&b, `---
apiVersion: v1
kind: Service
metadata:
  name: netcheck
  namespace: %s
spec:
  type: ClusterIP
  selector: {app: netcheck}
  ports: [{port: 80, targetPort: %d}]
`, netcheckNamespace, netcheckPort)
	return b.String()
}

// netcheckPods lists the netcheck pods and checks that each runs on the
// node it was pinned to, with an address.
func netcheckPods(t *testing.T, ctx context.Context, k kube, nodes []string) []netPod {
	t.Helper()
	out, err := k.run(ctx, "-n", netcheckNamespace, "get", "pods", "-l", "app=netcheck", "-o",
		`jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName} {.status.podIP}{"\n"}{end}`)
	if err != nil {
		t.Fatal(err)
	}
	var pods []netPod
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			t.Fatalf("netcheck pod without a node or an address: %q", line)
		}
		p := netPod{name: f[0], node: f[1], ip: f[2]}
		if p.name != "netcheck-"+p.node {
			t.Fatalf("pod %s runs on %s", p.name, p.node)
		}
		pods = append(pods, p)
	}
	if len(pods) != len(nodes) {
		t.Fatalf("%d netcheck pods, want one on each of %v: %+v", len(pods), nodes, pods)
	}
	return pods
}

// netcheckServices maps each netcheck service's name to its ClusterIP.
func netcheckServices(t *testing.T, ctx context.Context, k kube) map[string]string {
	t.Helper()
	out, err := k.run(ctx, "-n", netcheckNamespace, "get", "services", "-o",
		`jsonpath={range .items[*]}{.metadata.name} {.spec.clusterIP}{"\n"}{end}`)
	if err != nil {
		t.Fatal(err)
	}
	services := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if name, ip, ok := strings.Cut(line, " "); ok && ip != "" && ip != "None" {
			services[name] = ip
		}
	}
	return services
}

// waitEndpoints waits until every netcheck service has exactly its pods
// as ready endpoints (from the EndpointSlices kube-proxy reads).
func waitEndpoints(t *testing.T, ctx context.Context, k kube, pods []netPod) {
	t.Helper()
	want := map[string][]string{}
	for _, p := range pods {
		want[p.name] = []string{p.ip}
		want["netcheck"] = append(want["netcheck"], p.ip)
	}
	for _, ips := range want {
		sort.Strings(ips)
	}
	var got map[string][]string
	var out string
	var err error
	ok := e2etest.WaitFor(ctx, time.Minute, time.Second, func() bool {
		out, err = k.run(ctx, "-n", netcheckNamespace, "get", "endpointslices", "-o",
			`jsonpath={range .items[*]}{.metadata.labels.kubernetes\.io/service-name}{range .endpoints[?(@.conditions.ready==true)]} {.addresses[0]}{end}{"\n"}{end}`)
		if err != nil {
			return false
		}
		got = map[string][]string{}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			f := strings.Fields(line)
			if len(f) > 0 {
				got[f[0]] = append(got[f[0]], f[1:]...)
			}
		}
		for svc, ips := range want {
			have := slices.Clone(got[svc])
			sort.Strings(have)
			if !slices.Equal(have, ips) {
				return false
			}
		}
		return true
	})
	if !ok {
		t.Fatalf("netcheck services without their endpoints after a minute: want %v, have %v (%v)\n%s", want, got, err, out)
	}
}

// waitKubeProxy waits until kube-proxy on every node sends each ClusterIP
// (IP:PORT, TCP or UDP) to a service chain. Until it does, a connection to
// the service from that node or its pods matches no rule, leaves by the
// node's default route and is lost, and its conntrack entry keeps the
// retransmissions on that path: a timeout that says nothing about the pod
// network. kube-proxy runs in iptables mode in a lab, and writes that rule
// only for a service with ready endpoints (it rejects otherwise).
func (l *testLab) waitKubeProxy(t *testing.T, ctx context.Context, clusterIPs ...string) {
	t.Helper()
	start := time.Now()
	for _, n := range l.lab.KubernetesNodes() {
		var missing []string
		var out string
		var err error
		ok := e2etest.WaitFor(ctx, time.Minute, 500*time.Millisecond, func() bool {
			out, err = l.exec(ctx, n.Name, "iptables-save -t nat")
			if err != nil {
				return false
			}
			missing = nil
			for _, c := range clusterIPs {
				if !hasServiceRule(out, c) {
					missing = append(missing, c)
				}
			}
			return len(missing) == 0
		})
		if !ok {
			var rules []string
			for _, line := range strings.Split(out, "\n") {
				if strings.HasPrefix(line, "-A KUBE-SERVICES ") {
					rules = append(rules, line)
				}
			}
			t.Fatalf("kube-proxy on %s has no rules for %v after a minute (%v); its KUBE-SERVICES:\n%s", n.Name, missing, err, strings.Join(rules, "\n"))
		}
	}
	t.Logf("kube-proxy: %v programmed on every node after %v", clusterIPs, time.Since(start).Round(time.Millisecond))
}

// hasServiceRule reports whether an iptables-save of the nat table sends
// ip:port to a kube-proxy service chain.
func hasServiceRule(natRules, clusterIP string) bool {
	ip, port, _ := strings.Cut(clusterIP, ":")
	for _, line := range strings.Split(natRules, "\n") {
		if strings.HasPrefix(line, "-A KUBE-SERVICES -d "+ip+"/32 ") &&
			strings.Contains(line, " --dport "+port+" ") && strings.Contains(line, " -j KUBE-SVC-") {
			return true
		}
	}
	return false
}

// probesFrom lists what client connects to: every other pod by IP, every
// other pod's service by ClusterIP and by DNS name, and the shared service
// both ways. A pod's own address is left out: that traffic never leaves
// its network namespace.
func probesFrom(client netPod, pods []netPod, services map[string]string, domain string) []probe {
	var out []probe
	for _, p := range pods {
		if p.name == client.name {
			continue
		}
		out = append(out,
			probe{"pod IP", fmt.Sprintf("%s:%d", p.ip, netcheckPort), p.name},
			probe{"ClusterIP", services[p.name] + ":80", p.name},
			probe{"DNS", fmt.Sprintf("%s.%s.svc.%s:80", p.name, netcheckNamespace, domain), p.name},
		)
	}
	out = append(out,
		probe{"ClusterIP", services["netcheck"] + ":80", ""},
		probe{"DNS", fmt.Sprintf("netcheck.%s.svc.%s:80", netcheckNamespace, domain), ""},
	)
	return out
}

// runProbes runs netcheck get in client's pod with all the probes' targets
// and returns its answer line per target (those it printed).
func runProbes(ctx context.Context, k kube, client netPod, probes []probe) map[string]string {
	args := []string{"-n", netcheckNamespace, "exec", client.name, "--", "/netcheck", "get", "-timeout", "3s"}
	for _, p := range probes {
		args = append(args, p.target)
	}
	c, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	// netcheck exits 1 when a target failed; its lines still say which.
	out, err := k.run(c, args...)
	lines := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if target, rest, ok := strings.Cut(strings.TrimSpace(line), " "); ok {
			lines[target] = rest
		}
	}
	if err != nil && len(lines) == 0 {
		// kubectl exec itself failed: every target reports it.
		for _, p := range probes {
			lines[p.target] = "error: kubectl exec: " + err.Error()
		}
	}
	return lines
}

// judge returns what is wrong with a probe's answer, or "" when the right
// pod answered.
func judge(p probe, answer string, pods []netPod) string {
	switch {
	case answer == "":
		return "no answer from netcheck"
	case strings.HasPrefix(answer, "error: "):
		if p.want != "" {
			return fmt.Sprintf("%s (want an answer from %s)", answer, p.want)
		}
		return answer
	case p.want != "" && answer != p.want:
		return fmt.Sprintf("answered by %s, want %s", answer, p.want)
	case p.want == "" && !slices.ContainsFunc(pods, func(q netPod) bool { return q.name == answer }):
		return fmt.Sprintf("answered by %s, not a netcheck pod", answer)
	}
	return ""
}

// logNetcheckFailure logs what explains a failed probe: where the pods
// run, what each netcheck server saw (it logs every connection it
// answered), and each node's routes.
func (l *testLab) logNetcheckFailure(t *testing.T, k kube, pods []netPod) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, _ := k.run(ctx, "-n", netcheckNamespace, "get", "pods,services,endpointslices", "-o", "wide")
	t.Logf("netcheck resources:\n%s", out)
	for _, p := range pods {
		out, _ := k.run(ctx, "-n", netcheckNamespace, "logs", p.name)
		t.Logf("logs of %s (on %s, %s):\n%s", p.name, p.node, p.ip, out)
		routes, _ := l.exec(ctx, p.node, "ip -4 route; ip -4 neigh")
		t.Logf("routes and neighbours of %s:\n%s", p.node, routes)
	}
}

// deleteNetcheck removes the namespace (waiting for its pods to go) and the
// image from every node.
func (l *testLab) deleteNetcheck(t *testing.T, k kube) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if out, err := k.run(ctx, "delete", "namespace", netcheckNamespace, "--ignore-not-found", "--wait=true", "--timeout=2m"); err != nil {
		t.Errorf("delete namespace %s: %v\n%s", netcheckNamespace, err, out)
	}
	for _, n := range l.lab.KubernetesNodes() {
		if out, err := l.exec(ctx, n.Name, "ctr -n k8s.io images rm "+netcheckRef+" >/dev/null 2>&1 || true"); err != nil {
			t.Errorf("remove %s on %s: %v\n%s", netcheckRef, n.Name, err, out)
		}
	}
}

// sortedLines lists a client's answers, one "target answer" a line.
func sortedLines(m map[string]string) []string {
	var out []string
	for target, answer := range m {
		out = append(out, target+" "+answer)
	}
	sort.Strings(out)
	return out
}
