package nodeimage

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/labctl/lab/bpf/preflight"
	"github.com/labctl/lab/internal/scripttest"
	"github.com/labctl/lab/internal/tooltest"
)

const entrypointFile = "rootfs/usr/local/bin/lab-entrypoint"

// TestEntrypointScript parses the entrypoint with bash and runs shellcheck
// on it, as the node image gets it.
func TestEntrypointScript(t *testing.T) {
	b, err := os.ReadFile(entrypointFile)
	if err != nil {
		t.Fatal(err)
	}
	scripttest.Check(t, entrypointFile, string(b))
	if !strings.Contains(string(b), "fix_mounts\nfix_dns\nexec \"$@\"") {
		t.Error("the entrypoint does not call fix_mounts before it becomes systemd")
	}
}

// TestEntrypointMounts runs the entrypoint's fix_mounts in a mount
// namespace of its own, private as Docker leaves a container's: after it,
// /sys/fs/bpf is a bpffs and a shared mount, as Cilium's chart needs, and
// a second run changes nothing.
func TestEntrypointMounts(t *testing.T) {
	tooltest.Require(t, "a mount namespace to mount bpffs in", "unshare", "mount", "bash")
	b, err := os.ReadFile(entrypointFile)
	if err != nil {
		t.Fatal(err)
	}
	fn := regexp.MustCompile(`(?ms)^fix_mounts\(\) \{.*?^\}$`).FindString(string(b))
	if fn == "" {
		t.Fatal("no fix_mounts function in the entrypoint")
	}
	// The namespace starts private, and /sys/fs/bpf without bpffs.
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "bash", "-euc",
		"umount -l /sys/fs/bpf 2>/dev/null || true\n"+fn+"\nfix_mounts\nfix_mounts\ncat /proc/self/mountinfo")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("fix_mounts: %v\n%s", err, out)
	}
	mounts, err := preflight.ParseMountinfo(string(out))
	if err != nil {
		t.Fatal(err)
	}
	if err := preflight.BPFFSMounted(mounts, "/sys/fs/bpf"); err != nil {
		t.Error(err)
	}
	if err := preflight.SharedMount(mounts, "/sys/fs/bpf"); err != nil {
		t.Error(err)
	}
	n := 0
	for _, m := range mounts {
		if m.Point == "/sys/fs/bpf" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d mounts on /sys/fs/bpf after two runs, want 1", n)
	}
}
