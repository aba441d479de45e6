// Package tooltest finds the real programs that judge lab's output in
// tests — kubeadm and helm, which .ci/build-kubeadm.sh and
// .ci/build-helm.sh build into <repo>/.cache/tools, and system tools such
// as haproxy — and handles their absence the same way everywhere: the
// test skips, unless LAB_REQUIRE_TOOLS=1 (CI), where it fails. The same
// holds for root, which the tests that make namespaces, mounts or users
// need: every test package asks here, so the rule is written once.
package tooltest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// TB is the part of testing.TB these functions use; it lets programs
// outside go test (benchmarks driving test harnesses) call them too.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
}

// Required reports whether a missing tool is a failure (LAB_REQUIRE_TOOLS=1,
// as in CI) rather than a reason to skip: nothing may pass silently there.
func Required() bool { return os.Getenv("LAB_REQUIRE_TOOLS") == "1" }

// Missing skips t, or fails it when LAB_REQUIRE_TOOLS=1.
func Missing(t TB, why string) {
	t.Helper()
	if Required() {
		t.Fatalf("LAB_REQUIRE_TOOLS=1 but %s", why)
	}
	t.Skipf("%s", why)
}

// Root calls Missing unless the test runs as root; why says what needs it.
func Root(t TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "not root, and "+why+" needs root")
	}
}

// Path returns the path of the program name on PATH, or calls Missing
// saying how to get it.
func Path(t TB, name, howToGet string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(t, name+" not found ("+howToGet+")")
	}
	return p
}

// Require calls Missing, naming everything lacking, unless the test runs as
// root with every one of programs on PATH; hint says how to get them.
func Require(t TB, hint string, programs ...string) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, p := range programs {
		if _, err := exec.LookPath(p); err != nil {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		Missing(t, fmt.Sprintf("needs %s (%s)", strings.Join(missing, ", "), hint))
	}
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
func Find(t TB, name, env, howToGet string) string {
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
		t.Fatalf("%s: %v", name, err)
	}
	return abs
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}
