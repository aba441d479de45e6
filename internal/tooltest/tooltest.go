// Package tooltest finds the real programs that judge lab's output in
// tests — kubeadm and helm, which .ci/build-kubeadm.sh and
// .ci/build-helm.sh build into <repo>/.cache/tools, and system tools such
// as haproxy — and handles their absence the same way everywhere: the
// test skips, unless LAB_REQUIRE_TOOLS=1 (CI), where it fails.
package tooltest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Missing skips t, or fails it when LAB_REQUIRE_TOOLS=1.
func Missing(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("LAB_REQUIRE_TOOLS") == "1" {
		t.Fatalf("LAB_REQUIRE_TOOLS=1 but %s", why)
	}
	t.Skip(why)
}

// Dir is where the built tools are: $LAB_TOOLS_DIR, else .cache/tools at
// the root of the module the test runs in.
func Dir() string {
	if d := os.Getenv("LAB_TOOLS_DIR"); d != "" {
		return d
	}
	dir, err := os.Getwd()
	if err != nil {
		return filepath.Join(".cache", "tools")
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(d, ".cache", "tools")
		}
		if filepath.Dir(d) == d {
			return filepath.Join(dir, ".cache", "tools")
		}
	}
}

// Find returns the absolute path of the tool called name: $env when set,
// else Dir()/name, else name on PATH. Without one, it calls Missing with
// how to get it.
func Find(t testing.TB, name, env, howToGet string) string {
	t.Helper()
	bin := os.Getenv(env)
	if bin == "" {
		if p := filepath.Join(Dir(), name); isFile(p) {
			bin = p
		} else if p, err := exec.LookPath(name); err == nil {
			bin = p
		} else {
			Missing(t, "no "+name+" binary: "+howToGet+" (or set "+env+")")
		}
	}
	abs, err := filepath.Abs(bin)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}
