//go:build e2e

package cluster

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/labctl/lab/internal/e2etest"
	"github.com/labctl/lab/provision/artifacts"
	"github.com/labctl/lab/provision/labfile"
	"github.com/labctl/lab/templates/addons"
)

// checkAddons judges the builtin add-ons lab installed (the study's week 4
// has both): metrics-server answers kubectl top for every node, and a
// claim without a StorageClass binds to a local-path volume on a node's
// disk, which a pod writes and local-path's helper pod removes once the
// claim goes. The images are the ones lab built from the add-ons' Go
// modules, so this also judges them.
func (l *testLab) checkAddons(t *testing.T, ctx context.Context, k kube) {
	t.Helper()
	var out string
	var err error
	nodes := names(l.lab.KubernetesNodes())
	if !e2etest.WaitFor(ctx, 3*time.Minute, 2*time.Second, func() bool {
		out, err = k.run(ctx, "top", "nodes", "--no-headers")
		if err != nil {
			return false
		}
		for _, n := range nodes {
			if !strings.Contains(out, n+" ") {
				return false
			}
		}
		return true
	}) {
		t.Errorf("kubectl top nodes never showed all of %v: %v\n%s", nodes, err, out)
	} else {
		t.Logf("kubectl top nodes:\n%s", out)
	}

	const ns, claim, pod = "lab-e2e-storage", "data", "writer"
	image := artifacts.AddonImageRef(labfile.AddonLocalPath, l.addonVersion(labfile.AddonLocalPath))
	manifest := fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata: {name: %[1]s}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: %[2]s, namespace: %[1]s}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 16Mi}}
---
apiVersion: v1
kind: Pod
metadata: {name: %[3]s, namespace: %[1]s}
spec:
  restartPolicy: Never
  containers:
    - name: writer
      image: %[4]s
      imagePullPolicy: Never
      command: [sh, -c, 'echo written-by-lab > /data/proof && cat /data/proof']
      volumeMounts: [{name: data, mountPath: /data}]
  volumes:
    - name: data
      persistentVolumeClaim: {claimName: %[2]s}
`, ns, claim, pod, image)
	t.Cleanup(func() {
		_, _ = k.run(context.Background(), "delete", "namespace", ns, "--ignore-not-found", "--wait=false")
	})
	if out, err := e2etest.RunInput(ctx, manifest, k.kubectl, "--kubeconfig", k.kubeconfig, "apply", "-f", "-"); err != nil {
		t.Fatalf("a claim and a pod writing to it: %v\n%s", err, out)
	}
	if !e2etest.WaitFor(ctx, 3*time.Minute, 2*time.Second, func() bool {
		out, err = k.run(ctx, "-n", ns, "get", "pod", pod, "-o", "jsonpath={.status.phase}")
		return err == nil && (out == "Succeeded" || out == "Failed")
	}) || out != "Succeeded" {
		desc, _ := k.run(ctx, "-n", ns, "describe", "pod,pvc")
		t.Fatalf("the pod writing to a local-path claim: phase %q, %v\n%s", out, err, desc)
	}
	node, _ := k.run(ctx, "-n", ns, "get", "pod", pod, "-o", "jsonpath={.spec.nodeName}")
	pv, _ := k.run(ctx, "-n", ns, "get", "pvc", claim, "-o", "jsonpath={.spec.volumeName}")
	class, _ := k.run(ctx, "get", "pv", pv, "-o", "jsonpath={.spec.storageClassName}")
	if class != "local-path" {
		t.Errorf("the claim's volume %q has StorageClass %q, want local-path (the default)", pv, class)
	}
	found, err := l.exec(ctx, node, "cat "+addons.LocalPathDir+"/"+pv+"_*/proof")
	if err != nil || strings.TrimSpace(found) != "written-by-lab" {
		t.Errorf("on %s, volume %s under %s: %q, %v; want the pod's proof", node, pv, addons.LocalPathDir, found, err)
	}
	// Deleting the claim deletes the volume: local-path's helper pod, in
	// lab's image, removes the directory.
	if _, err := k.run(ctx, "-n", ns, "delete", "pod", pod, "--wait=true"); err != nil {
		t.Fatalf("delete the writer: %v", err)
	}
	if _, err := k.run(ctx, "-n", ns, "delete", "pvc", claim, "--wait=true"); err != nil {
		t.Fatalf("delete the claim: %v", err)
	}
	if !e2etest.WaitFor(ctx, 2*time.Minute, 2*time.Second, func() bool {
		out, err = l.exec(ctx, node, "ls "+addons.LocalPathDir)
		return err == nil && !strings.Contains(out, pv)
	}) {
		t.Errorf("on %s, volume %s is still in %s after its claim went: %q, %v", node, pv, addons.LocalPathDir, out, err)
	}
}

// addonVersion is the version the lab installs of add-on name.
func (l *testLab) addonVersion(name string) string {
	for _, a := range l.lab.Addons {
		if a.Name == name {
			return a.Version
		}
	}
	l.t.Fatalf("the lab has no add-on %s", name)
	return ""
}

// chartAddon is the chart add-on the study's week 4 gets in the suite: a
// chart directory on this machine (testdata/addon-chart), which lab packs,
// sends and installs with the lab file's values.
const chartAddon = "lab-e2e-note"

// addChartAddon adds chartAddon to the lab, as a lab file's addons entry
// with a local chart and values would after loading.
func (l *testLab) addChartAddon(t *testing.T, message string) {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("testdata", "addon-chart"))
	if err != nil {
		t.Fatal(err)
	}
	l.lab.Addons = append(l.lab.Addons, labfile.Addon{Name: chartAddon, Chart: dir, Namespace: chartAddon,
		Values: map[string]any{"message": message}})
}

// setChartMessage changes the chart add-on's values in the lab.
func (l *testLab) setChartMessage(message string) {
	for i := range l.lab.Addons {
		if l.lab.Addons[i].Name == chartAddon {
			l.lab.Addons[i].Values = map[string]any{"message": message}
		}
	}
}

// checkChartAddon judges that the chart add-on's release made its
// ConfigMap with the message the lab file's values give.
func (l *testLab) checkChartAddon(t *testing.T, ctx context.Context, k kube, message string) {
	t.Helper()
	out, err := k.run(ctx, "-n", chartAddon, "get", "configmap", chartAddon, "-o", "jsonpath={.data.message}")
	if err != nil || out != message {
		t.Errorf("the chart add-on's ConfigMap says %q, %v; want %q, the lab file's value", out, err, message)
	}
}
