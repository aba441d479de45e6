//go:build linux

// Package bpftest holds test helpers for code that runs the datapath in
// the real kernel: a private bpffs, throw-away network namespaces, and the
// rule that root-only tests skip on a developer machine but fail in CI.
package bpftest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/labctl/lab/internal/tooltest"
)

// Require skips the test unless it runs as root with the named tools on
// PATH; with LAB_REQUIRE_TOOLS=1 (CI) it fails instead, so nothing is
// silently skipped there.
func Require(t testing.TB, tools ...string) {
	t.Helper()
	tooltest.Require(t, "eBPF and network namespaces in the real kernel", append([]string{"ip"}, tools...)...)
}

// BPFFS mounts a private bpffs on a temporary directory and returns it.
// The mount (and with it every pin below it) goes when the test ends.
func BPFFS(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("bpffs", dir, "bpf", 0, "mode=0700"); err != nil {
		t.Fatalf("mount bpffs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount bpffs %s: %v", dir, err)
		}
	})
	return dir
}

// UniqueName returns prefix followed by a random suffix, short enough for
// an interface name when prefix has at most 7 characters.
func UniqueName(prefix string) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return prefix + hex.EncodeToString(b)
}

// Netns creates a network namespace with a unique name (ip netns add) with
// its loopback up, and deletes it when the test ends.
func Netns(t testing.TB, prefix string) string {
	t.Helper()
	name := UniqueName("lab-" + prefix + "-")
	IP(t, "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	IP(t, "-n", name, "link", "set", "lo", "up")
	return name
}

// IP runs the ip command and fails the test when it fails.
func IP(t testing.TB, args ...string) string {
	t.Helper()
	return Run(t, "ip", args...)
}

// Run runs a command, fails the test when it fails, and returns its output.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Exec runs a command inside the network namespace ns (ip netns exec) and
// returns its combined output and error.
func Exec(ns string, name string, args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...).CombinedOutput()
	return string(out), err
}

// Do runs fn on a thread that has entered network namespace ns.
func Do(ns string, fn func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return fmt.Errorf("current netns: %w", err)
	}
	defer orig.Close()
	target, err := netns.GetFromName(ns)
	if err != nil {
		return fmt.Errorf("netns %s: %w", ns, err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		return fmt.Errorf("enter netns %s: %w", ns, err)
	}
	fnErr := fn()
	if err := netns.Set(orig); err != nil {
		// Leave the thread locked: the runtime then destroys it rather
		// than reuse a thread in the wrong namespace.
		runtime.LockOSThread()
		return fmt.Errorf("leave netns %s: %w", ns, err)
	}
	return fnErr
}
