package artifacts

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/labctl/lab/provision/provider/docker/dockertest"
	"github.com/labctl/lab/provision/provider/docker/nodeimage"
)

func TestImageNameAndTag(t *testing.T) {
	for _, tc := range []struct{ ref, name, tag string }{
		{"registry.k8s.io/kube-apiserver:v1.34.12", "kube-apiserver", "v1.34.12"},
		{"registry.k8s.io/coredns/coredns:v1.12.1", "coredns", "v1.12.1"},
		{"lab.local:5000/etcd:3.6.5-0", "etcd", "3.6.5-0"},
		{"lab.local:5000/pause", "pause", ""},
	} {
		if got := imageName(tc.ref); got != tc.name {
			t.Errorf("imageName(%s) = %s, want %s", tc.ref, got, tc.name)
		}
		if got := tagOf(tc.ref); got != tc.tag {
			t.Errorf("tagOf(%s) = %s, want %s", tc.ref, got, tc.tag)
		}
	}
}

func TestWriteImageIsReproducible(t *testing.T) {
	dir := t.TempDir()
	spec := imageSpec{Ref: "lab.local/x:1", Arch: "amd64", Entrypoint: []string{"/x"}, Files: []layerEntry{
		{Name: "x", Mode: 0o755, Data: []byte("#!/bin/true\n")},
		{Name: "usr/sbin/iptables", Link: "xtables-nft-multi"},
		{Name: "tmp", Mode: 0o777 | os.ModeSticky, Dir: true},
	}}
	var ids []string
	var data [][]byte
	for i := 0; i < 2; i++ {
		p := filepath.Join(dir, "img.tar")
		id, err := writeImage(p, dir, spec)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		ids, data = append(ids, id), append(data, b)
	}
	if ids[0] != ids[1] || !bytes.Equal(data[0], data[1]) {
		t.Errorf("two writes of the same image differ: %s %s", ids[0], ids[1])
	}
	// The layer names every parent directory before its children.
	tr := tar.NewReader(bytes.NewReader(data[0]))
	var names []string
	for {
		hdr, err := tr.Next()
		if err != nil {
			break
		}
		if strings.HasSuffix(hdr.Name, "/layer.tar") {
			lr := tar.NewReader(tr)
			for {
				h, err := lr.Next()
				if err != nil {
					break
				}
				names = append(names, h.Name)
			}
		}
	}
	if got, want := strings.Join(names, " "), "tmp/ usr/ usr/sbin/ usr/sbin/iptables x"; got != want {
		t.Errorf("layer entries %q, want %q", got, want)
	}
}

// writeTar writes a small root file system: links as name → target, files
// as name → content.
func writeTar(t *testing.T, links, files map[string]string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "rootfs.tar")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	for _, d := range []string{"./", "./usr/", "./usr/lib/", "./usr/lib/x86_64-linux-gnu/", "./usr/sbin/", "./etc/"} {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755})
	}
	for name, target := range links {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "./" + name, Linkname: target, Mode: 0o777})
	}
	for name, body := range files {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "./" + name, Mode: 0o644, Size: int64(len(body))})
		tw.Write([]byte(body))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return p
}

func TestRootfsResolveFollowsLinks(t *testing.T) {
	p := writeTar(t, map[string]string{
		"lib":                                  "usr/lib",
		"lib64":                                "usr/lib64",
		"usr/lib64":                            "lib/x86_64-linux-gnu",
		"usr/lib/x86_64-linux-gnu/libc.so.6":   "libc-2.36.so",
		"usr/lib/x86_64-linux-gnu/loop":        "/usr/lib/x86_64-linux-gnu/loop",
		"etc/alternatives-iptables":            "/usr/sbin/xtables-nft-multi",
		"usr/lib/x86_64-linux-gnu/libnone.so1": "missing",
	}, map[string]string{
		"usr/lib/x86_64-linux-gnu/libc-2.36.so": "libc",
		"usr/sbin/xtables-nft-multi":            "multi",
	})
	r, err := openRootfs(p)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, tc := range []struct {
		name, real string
		links      int
	}{
		{"lib/x86_64-linux-gnu/libc.so.6", "usr/lib/x86_64-linux-gnu/libc-2.36.so", 2},
		{"/lib64/libc.so.6", "usr/lib/x86_64-linux-gnu/libc-2.36.so", 3},
		{"etc/alternatives-iptables", "usr/sbin/xtables-nft-multi", 1},
	} {
		real, links, err := r.resolve(tc.name)
		if err != nil {
			t.Errorf("resolve %s: %v", tc.name, err)
			continue
		}
		if real != tc.real || len(links) != tc.links {
			t.Errorf("resolve %s = %s via %v, want %s via %d links", tc.name, real, links, tc.real, tc.links)
		}
	}
	for _, name := range []string{"usr/lib/x86_64-linux-gnu/loop", "usr/lib/x86_64-linux-gnu/libnone.so1", "nothing"} {
		if _, _, err := r.resolve(name); err == nil {
			t.Errorf("resolve %s: no error", name)
		}
	}
	data, err := r.read("usr/sbin/xtables-nft-multi")
	if err != nil || string(data) != "multi" {
		t.Errorf("read: %q %v", data, err)
	}
}

// TestPauseImageRunsInDocker judges the docker-archive writer and lab's
// pause program with a real Docker daemon: docker load accepts the tarball
// and reports the same image ID, the container runs, and it stops at once
// on SIGTERM with exit code 0.
func TestPauseImageRunsInDocker(t *testing.T) {
	cli := dockertest.Docker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bin := filepath.Join(dir, "pause")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w -X main.version=test", "-o", bin, "./pause")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build pause: %v\n%s", err, out)
	}
	ref := "lab.local/pause-test:" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))
	tarball := filepath.Join(dir, "pause.tar")
	id, err := writeImage(tarball, dir, imageSpec{Ref: ref, Arch: "amd64", Entrypoint: []string{"/pause"},
		Files: []layerEntry{{Name: "pause", Mode: 0o755, Src: bin}}})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(tarball)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if out, err := cli.RunWithInput(ctx, f, "load"); err != nil {
		t.Fatalf("docker load: %v\n%s", err, out)
	}
	t.Cleanup(func() { cli.Run(context.Background(), "image", "rm", "-f", ref) })
	out, err := cli.Run(ctx, "image", "inspect", "--format", "{{.Id}}", ref)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(out)); got != id {
		t.Errorf("docker sees image ID %s, lab wrote %s", got, id)
	}
	out, err = cli.Run(ctx, "run", "-d", "--network", "none", ref)
	if err != nil {
		t.Fatalf("docker run: %v\n%s", err, out)
	}
	ctr := strings.TrimSpace(string(out))
	t.Cleanup(func() { cli.Run(context.Background(), "rm", "-f", ctr) })
	// pause says when it has caught the signals; a SIGTERM before that
	// would test the Go runtime, not pause.
	for {
		logs, _ := cli.Run(ctx, "logs", ctr)
		if strings.Contains(string(logs), "holding the pod's namespaces") {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("pause never said it was up; logs: %s", logs)
		case <-time.After(20 * time.Millisecond):
		}
	}
	// A pause that ignored SIGTERM would be killed after the grace
	// period with exit code 137.
	if out, err := cli.Run(ctx, "stop", "-t", "30", ctr); err != nil {
		t.Fatalf("docker stop: %v\n%s", err, out)
	}
	out, err = cli.Run(ctx, "inspect", "--format", "{{.State.ExitCode}}", ctr)
	if err != nil {
		t.Fatal(err)
	}
	if code := strings.TrimSpace(string(out)); code != "0" {
		t.Errorf("pause exited %s on SIGTERM, want 0", code)
	}
}

// TestIptablesImageRuns takes Debian's iptables out of the node image's
// root file system the way the kube-proxy image gets it, and runs it in a
// container of its own (a network namespace of its own, so the host's
// rules are untouched): the loader, every library and the nftables
// backend must all be there for it to add and list a rule.
func TestIptablesImageRuns(t *testing.T) {
	cli := dockertest.Docker(t)
	dockertest.NodeImage(t, cli)
	userland, err := nodeimage.BaseTarball("")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	b := &builder{o: BuildOptions{Arch: runtime.GOARCH, Userland: userland}}
	files, err := b.iptables()
	if err != nil {
		t.Fatal(err)
	}
	ref := "lab.local/iptables-test:" + randomTag(t)
	tarball := filepath.Join(dir, "iptables.tar")
	if _, err := writeImage(tarball, dir, imageSpec{Ref: ref, Arch: runtime.GOARCH,
		Env:        []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"},
		Entrypoint: []string{"/usr/sbin/iptables"}, Files: files}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(tarball)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if out, err := cli.RunWithInput(ctx, f, "load"); err != nil {
		t.Fatalf("docker load: %v\n%s", err, out)
	}
	t.Cleanup(func() { cli.Run(context.Background(), "image", "rm", "-f", ref) })
	script := []string{"run", "--rm", "--network", "none", "--cap-add", "NET_ADMIN", "--cap-add", "NET_RAW", "--entrypoint", "/usr/sbin/iptables-restore", ref, "--version"}
	out, err := cli.Run(ctx, script...)
	if err != nil || !strings.Contains(string(out), "nf_tables") {
		t.Fatalf("iptables-restore --version in the image: %v\n%s", err, out)
	}
	// A rule with a match and a target loaded from the extensions.
	if out, err := cli.Run(ctx, "run", "--rm", "--network", "none", "--cap-add", "NET_ADMIN", "--cap-add", "NET_RAW",
		"--entrypoint", "/bin/none", ref); err == nil {
		t.Fatalf("a missing entrypoint ran: %s", out)
	}
	out, err = cli.Run(ctx, "run", "--rm", "--network", "none", "--cap-add", "NET_ADMIN", "--cap-add", "NET_RAW", ref,
		"-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", "10.96.0.1", "--dport", "443", "-m", "comment", "--comment", "lab test",
		"-j", "DNAT", "--to-destination", "192.0.2.1:6443")
	if err != nil {
		t.Fatalf("iptables -A in the image: %v\n%s", err, out)
	}
}

func randomTag(t *testing.T) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
