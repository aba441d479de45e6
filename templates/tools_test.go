package templates

import (
	"bytes"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/labctl/lab/internal/tooltest"
	"github.com/labctl/lab/provision/labfile"
)

// needTool returns the path of a program a test needs (see tooltest: a
// missing judge must fail in CI rather than pass silently).
func needTool(t *testing.T, name string) string {
	t.Helper()
	return tooltest.Path(t, name, "apt-get install "+name)
}

// needRoot is needTool for root privileges (network namespaces, mounts).
func needRoot(t *testing.T) {
	t.Helper()
	tooltest.Root(t, "making network namespaces")
}

// run runs a command and returns its combined output and error.
func run(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// mustRun is run that fails the test on error.
func mustRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := run(name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// nsName makes a network namespace name unique to this process and test,
// so that parallel test binaries and reruns never collide.
func nsName(t *testing.T, suffix string) string {
	h := fnv.New32a()
	h.Write([]byte(t.Name()))
	return fmt.Sprintf("lt%d-%08x-%s", os.Getpid(), h.Sum32(), suffix)
}

// newNetns creates a network namespace that is deleted when the test ends.
func newNetns(t *testing.T, suffix string) string {
	t.Helper()
	name := nsName(t, suffix)
	mustRun(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		if _, err := run("ip", "netns", "del", name); err != nil {
			t.Errorf("clean up: %v", err)
		}
	})
	mustRun(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

// lbFiles returns the rendered files of every load-balancer node of every
// lab in labs/, keyed "lab/node".
func lbFiles(t *testing.T) map[string]map[string]File {
	t.Helper()
	out := map[string]map[string]File{}
	for name, l := range labs(t) {
		for _, n := range l.LoadBalancers() {
			byPath := map[string]File{}
			for _, f := range renderNode(t, l, n) {
				byPath[f.Path] = f
			}
			out[name+"/"+n.Name] = byPath
		}
	}
	if len(out) == 0 {
		t.Fatal("no lab in labs/ has load-balancer nodes: nothing to judge")
	}
	return out
}

// writeFiles writes files under dir by their base name and returns dir.
func writeFiles(t *testing.T, dir string, files ...File) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f.Path)), f.Content, f.Mode); err != nil {
			t.Fatal(err)
		}
		// WriteFile's mode is filtered by the umask; keepalived's script
		// security looks at the real one.
		if err := os.Chmod(filepath.Join(dir, filepath.Base(f.Path)), f.Mode); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// haproxyCheck is the judge for haproxy.cfg: `haproxy -c` with -dW, which
// turns every warning into a failure.
func haproxyCheck(haproxy, path string) error {
	if _, err := os.Stat(path); err != nil {
		return err
	}
	_, err := run(haproxy, "-dW", "-c", "-f", path)
	return err
}

func TestHAProxyConfigsPassHAProxy(t *testing.T) {
	haproxy := needTool(t, "haproxy")
	for key, files := range lbFiles(t) {
		t.Run(key, func(t *testing.T) {
			f, ok := files[HAProxyConfigPath]
			if !ok {
				t.Fatalf("load-balancer node has no %s", HAProxyConfigPath)
			}
			dir := writeFiles(t, t.TempDir(), f)
			if err := haproxyCheck(haproxy, filepath.Join(dir, "haproxy.cfg")); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestHAProxyJudgeRejects proves the judge above can fail: a broken backend
// line and a warning are both rejected.
func TestHAProxyJudgeRejects(t *testing.T) {
	haproxy := needTool(t, "haproxy")
	for _, files := range lbFiles(t) {
		good := files[HAProxyConfigPath]
		for name, bad := range map[string]string{
			"bad server":   strings.Replace(string(good.Content), "    server ", "    server-typo ", 1),
			"bad port":     strings.Replace(string(good.Content), "bind *:", "bind *:99999", 1),
			"warning only": strings.Replace(string(good.Content), "    option tcplog\n", "    option tcplog\n    option httplog\n", 1),
		} {
			if bad == string(good.Content) {
				t.Fatalf("%s: could not break the config", name)
			}
			f := good
			f.Content = []byte(bad)
			dir := writeFiles(t, filepath.Join(t.TempDir(), "bad"), f)
			if err := haproxyCheck(haproxy, filepath.Join(dir, "haproxy.cfg")); err == nil {
				t.Errorf("%s: haproxy -c accepted a broken config", name)
			}
		}
		break // one node is enough to prove the judge
	}
}

// keepalivedCheck runs `keepalived -t` on dir/keepalived.conf inside network
// namespace ns, with dir mounted on /etc/keepalived (only inside the
// private mount namespace `ip netns exec` creates), so that keepalived finds
// the track script where the config says and checks its security.
// keepalived -t exits 0 when the file is missing, so that is checked first.
func keepalivedCheck(ns, dir string) error {
	conf := filepath.Join(dir, "keepalived.conf")
	if _, err := os.Stat(conf); err != nil {
		return err
	}
	if _, err := os.Stat("/etc/keepalived"); err != nil {
		return fmt.Errorf("mount point: %w", err)
	}
	_, err := run("ip", "netns", "exec", ns, "sh", "-c",
		`mount --bind "$1" /etc/keepalived && exec keepalived -t -f /etc/keepalived/keepalived.conf`, "sh", dir)
	return err
}

// nsWithInterface makes a namespace holding an interface called iface (one
// end of a veth pair: dummy interfaces are not available everywhere).
func nsWithInterface(t *testing.T, suffix, iface string) string {
	t.Helper()
	ns := newNetns(t, suffix)
	mustRun(t, "ip", "-n", ns, "link", "add", iface, "type", "veth", "peer", "name", "peer0")
	mustRun(t, "ip", "-n", ns, "link", "set", iface, "up")
	return ns
}

func TestKeepalivedConfigsPassKeepalived(t *testing.T) {
	needRoot(t)
	needTool(t, "ip")
	needTool(t, "keepalived")
	for name, l := range labs(t) {
		for i, n := range l.LoadBalancers() {
			t.Run(name+"/"+n.Name, func(t *testing.T) {
				files := renderNode(t, l, n)
				dir := writeFiles(t, filepath.Join(t.TempDir(), "etc"), pick(t, files, KeepalivedConfigPath, CheckScriptPath)...)
				ns := nsWithInterface(t, fmt.Sprint(i), testFacts(l).Interface)
				if err := keepalivedCheck(ns, dir); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

// TestKeepalivedJudgeRejects proves keepalived -t, run this way, can fail:
// on an authentication block under VRRPv3, on a missing interface, on a
// missing track script, and that a missing file is caught before keepalived
// (which would pass it).
func TestKeepalivedJudgeRejects(t *testing.T) {
	needRoot(t)
	needTool(t, "ip")
	needTool(t, "keepalived")
	l, _, err := labfile.Load("../labs/ci.yaml")
	if err != nil {
		t.Fatal(err)
	}
	n := l.LoadBalancers()[0]
	iface := testFacts(l).Interface
	files := pick(t, renderNode(t, l, n), KeepalivedConfigPath, CheckScriptPath)
	ns := nsWithInterface(t, "0", iface)

	good := writeFiles(t, filepath.Join(t.TempDir(), "good"), files...)
	if err := keepalivedCheck(ns, good); err != nil {
		t.Fatalf("the unchanged config must pass first: %v", err)
	}

	auth := files[0]
	auth.Content = []byte(strings.Replace(string(auth.Content), "    nopreempt\n",
		"    nopreempt\n    authentication {\n        auth_type PASS\n        auth_pass secret\n    }\n", 1))
	if bytes.Equal(auth.Content, files[0].Content) {
		t.Fatal("could not insert an authentication block")
	}
	if err := keepalivedCheck(ns, writeFiles(t, filepath.Join(t.TempDir(), "auth"), auth, files[1])); err == nil {
		t.Error("keepalived -t accepted an authentication block under VRRPv3")
	}

	bare := newNetns(t, "bare")
	if err := keepalivedCheck(bare, good); err == nil {
		t.Errorf("keepalived -t accepted a config whose interface %s does not exist", iface)
	}

	if err := keepalivedCheck(ns, writeFiles(t, filepath.Join(t.TempDir(), "noscript"), files[0])); err == nil {
		t.Error("keepalived -t accepted a config whose track script is missing")
	}

	if err := keepalivedCheck(ns, t.TempDir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing keepalived.conf: got %v, want a not-exist error", err)
	}
}

// pick returns the files at paths, in that order.
func pick(t *testing.T, files []File, paths ...string) []File {
	t.Helper()
	var out []File
	for _, p := range paths {
		found := false
		for _, f := range files {
			if f.Path == p {
				out = append(out, f)
				found = true
			}
		}
		if !found {
			t.Fatalf("no %s among the rendered files", p)
		}
	}
	return out
}

// TestContainerdConfigsLoad has containerd parse every rendered config and
// checks, in the configuration it would run with, the settings the kubelet
// depends on.
func TestContainerdConfigsLoad(t *testing.T) {
	containerd := needTool(t, "containerd")
	for name, l := range labs(t) {
		for _, n := range l.KubernetesNodes() {
			t.Run(name+"/"+n.Name, func(t *testing.T) {
				f := pick(t, renderNode(t, l, n), ContainerdConfigPath)[0]
				dir := writeFiles(t, t.TempDir(), f)
				out, err := run(containerd, "--config", filepath.Join(dir, "config.toml"), "config", "dump")
				if err != nil {
					t.Fatal(err)
				}
				pause, _ := PauseVersion(l.Kubernetes.Version)
				repo := l.Kubernetes.ImageRepository
				if repo == "" {
					repo = DefaultImageRepository
				}
				for _, want := range []string{
					"SystemdCgroup = true",
					fmt.Sprintf("sandbox_image = %q", repo+"/pause:"+pause),
					`address = "/run/containerd/containerd.sock"`,
				} {
					if !strings.Contains(out, want) {
						t.Errorf("containerd's effective config lacks %s", want)
					}
				}
			})
		}
	}
}
