//go:build e2e

package cluster

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/labctl/lab/internal/e2etest"
	"github.com/labctl/lab/provision"
	"github.com/labctl/lab/provision/provider/docker/dockertest"
	"github.com/labctl/lab/provision/provider/docker/nodeimage"
)

// TestPodNetworkPerf prints what a path between two workers costs, with
// lab's builtin datapath and with Cilium (labs/cilium-ci.yaml) on the same
// container nodes: the round trip of a small message and the throughput
// of one TCP connection, pod to pod across the nodes and, as the baseline
// without any pod network, host network to host network between the same
// two nodes. Figures for docs/performance.md, never assertions:
//
//	LAB_PODNET_PERF=1 go test -tags e2e -run TestPodNetworkPerf -v ./provision/e2e/cluster
func TestPodNetworkPerf(t *testing.T) {
	if os.Getenv("LAB_PODNET_PERF") != "1" {
		t.Skip("figures only: run with LAB_PODNET_PERF=1")
	}
	ctx := e2etest.Context(t, 40*time.Minute)
	restoreSysctls(t)
	cli := dockertest.Docker(t)
	image := dockertest.NodeImage(t, cli)
	set := buildSet(t, ctx)
	kubectl := kubectlOf(t, set)
	buildCiliumSet(t, ctx)
	archive := buildNetcheckImage(t, ctx)

	for _, c := range []struct {
		name string
		lab  func(t *testing.T, name string, octet int) string
	}{
		{"builtin", func(t *testing.T, name string, octet int) string {
			// The Cilium lab with lab's own datapath and kube-proxy.
			text := labsFile(t, "cilium-ci.yaml", name, image, octet)
			i, j := strings.Index(text, "\ncni:\n"), strings.Index(text, "\nnodes:\n")
			text = text[:i] + "\ncni:\n  type: builtin" + text[j:]
			return strings.Replace(text, "\n  kubeProxy: false\n", "\n", 1)
		}},
		{"cilium", func(t *testing.T, name string, octet int) string {
			return labsFile(t, "cilium-ci.yaml", name, image, octet)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := newLabFrom(t, cli, func(name string, octet int) string { return c.lab(t, name, octet) })
			opts := provision.Options{StateRoot: l.stateRoot, Provider: l.prov, Userland: nodeimage.BaseTarball, Report: &e2etest.Events{}}
			if err := provision.Up(ctx, l.lab, opts); err != nil {
				t.Fatalf("lab up: %v\n%s", err, opts.Report.(*e2etest.Events).Failures())
			}
			k := kube{kubectl, l.stateRoot + "/" + l.name() + "/admin.conf"}
			l.importImage(t, ctx, archive, netcheckRef)
			if out, err := e2etest.RunInput(ctx, perfManifest(), k.kubectl, "--kubeconfig", k.kubeconfig, "apply", "-f", "-"); err != nil {
				t.Fatalf("perf pods: %v\n%s", err, out)
			}
			if out, err := k.run(ctx, "-n", "perf", "wait", "--for=condition=Ready", "pod", "--all", "--timeout=3m"); err != nil {
				t.Fatalf("perf pods not Ready: %v\n%s", err, out)
			}
			ip := func(pod string) string {
				out, err := k.run(ctx, "-n", "perf", "get", "pod", pod, "-o", "jsonpath={.status.podIP}")
				if err != nil {
					t.Fatalf("%s's address: %v %s", pod, err, out)
				}
				return strings.TrimSpace(out)
			}
			// Three rounds, the paths alternating: a lab just up is
			// still settling (Cilium's agents compile and regenerate),
			// and the rounds show how much that weighs.
			for round := 1; round <= 3; round++ {
				for _, p := range []struct{ what, client, target string }{
					{"pod to pod (w1 to w2)", "client", ip("server") + ":9000"},
					{"host network to host network (w1 to w2), no pod network", "hclient", ip("hserver") + ":9001"},
				} {
					out, err := k.run(ctx, "-n", "perf", "exec", p.client, "--", "/netcheck", "perf", "-rtt", "5000", "-mib", "512", p.target)
					if err != nil {
						t.Errorf("%s: %v\n%s", p.what, err, out)
						continue
					}
					t.Logf("PERF %s, round %d, %s: %s", c.name, round, p.what, strings.TrimSpace(out))
				}
			}
		})
	}
}

// perfManifest is a perf server and a client on w2 and w1, each once in
// a pod of its own and once on the node's host network.
func perfManifest() string {
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: Namespace\nmetadata: {name: perf}\n")
	for _, p := range []struct {
		name, node string
		host       bool
		args       string
	}{
		{"server", "w2", false, "[perf-serve, -addr, ':9000']"},
		{"hserver", "w2", true, "[perf-serve, -addr, ':9001']"},
		// The clients only need to run: a name server is something to run.
		{"client", "w1", false, "[serve, -addr, ':9002']"},
		{"hclient", "w1", true, "[serve, -addr, ':9003']"},
	} {
		fmt.Fprintf(&b, `---
apiVersion: v1
kind: Pod
metadata: {name: %s, namespace: perf}
spec:
  nodeName: %s
  hostNetwork: %v
  containers:
  - name: netcheck
    image: %s
    imagePullPolicy: Never
    args: %s
`, p.name, p.node, p.host, netcheckRef, p.args)
	}
	return b.String()
}
