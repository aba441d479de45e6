// Command sshbench measures lab's SSH transport against OpenSSH, Ansible
// and a bare x/crypto/ssh fan-out on emulated nodes (real sshd processes
// on loopback addresses, started by internal/sshtest), and prints the
// figures with the commands that produced them. It needs root.
//
//	go run ./bench/sshbench -nodes 1,10,50 -runs 3
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labctl/lab/internal/sshtest"
	"github.com/labctl/lab/provision/ssh"
	xssh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// runner lets the test harness run outside `go test`.
type runner struct {
	mu       sync.Mutex
	cleanups []func()
}

func (r *runner) Helper() {}
func (r *runner) Cleanup(f func()) {
	r.mu.Lock()
	r.cleanups = append(r.cleanups, f)
	r.mu.Unlock()
}
func (r *runner) Logf(format string, args ...any) { log.Printf(format, args...) }
func (r *runner) Fatalf(format string, args ...any) {
	r.cleanup()
	log.Fatalf(format, args...)
}
func (r *runner) Skipf(format string, args ...any) { r.Fatalf(format, args...) }

func (r *runner) cleanup() {
	r.mu.Lock()
	fs := r.cleanups
	r.cleanups = nil
	r.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

type bench struct {
	r       *runner
	dir     string
	key     *sshtest.Key
	known   string
	sshCfg  string
	nodes   []*sshtest.Node
	runs    int
	targets []ssh.Target
}

func main() {
	nodeList := flag.String("nodes", "1,10,50", "node counts for the command fan-out")
	runs := flag.Int("runs", 3, "runs per measurement (the median is printed)")
	uploadNodes := flag.Int("upload-nodes", 5, "nodes for the upload benchmark")
	uploadMiB := flag.Int("upload-mib", 100, "MiB uploaded to each node")
	ansible := flag.Bool("ansible", true, "also time ansible (slow)")
	flag.Parse()
	log.SetFlags(0)

	var counts []int
	for _, s := range strings.Split(*nodeList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			log.Fatalf("bad -nodes %q", *nodeList)
		}
		counts = append(counts, n)
	}
	maxNodes := max(slices.Max(counts), *uploadNodes)

	r := &runner{}
	defer r.cleanup()
	b := setup(r, maxNodes, *runs)
	fmt.Printf("# lab SSH benchmarks: %d emulated nodes (OpenSSH sshd on loopback), host keys checked, median of %d runs\n\n", maxNodes, *runs)

	fmt.Println("## `true` on every node (fresh connections)")
	fmt.Println()
	fmt.Println("| nodes | lab fan-out | bare x/crypto/ssh | lab / bare | ssh loop | xargs -P ssh | xargs -P ssh (curve25519) | ansible -m command |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	for _, n := range counts {
		lab := b.median(func() error { return b.labFanOut(n) })
		bare := b.median(func() error { return b.bareFanOut(n) })
		loop := b.median(func() error { return b.shell(n, loopCmd(b.sshCfg, "")) })
		xargs := b.median(func() error { return b.shell(n, xargsCmd(b.sshCfg, n, "")) })
		xargs25519 := b.median(func() error { return b.shell(n, xargsCmd(b.sshCfg, n, "-o KexAlgorithms=curve25519-sha256")) })
		ans := "-"
		if *ansible {
			ans = fmtDur(b.median(func() error { return b.ansible(n) }))
		}
		fmt.Printf("| %d | %s | %s | %.2fx | %s | %s | %s | %s |\n", n, fmtDur(lab), fmtDur(bare),
			lab.Seconds()/bare.Seconds(), fmtDur(loop), fmtDur(xargs), fmtDur(xargs25519), ans)
	}
	fmt.Println()
	fmt.Println("Commands (HOSTS holds one ssh_config alias per line; the ssh_config sets the key,")
	fmt.Println("UserKnownHostsFile and StrictHostKeyChecking=yes):")
	fmt.Println()
	fmt.Println("    lab:     ssh.Transport.Each(ctx, targets, N, Run(\"true\")), policy strict, new transport per run")
	fmt.Println("    bare:    x/crypto/ssh Dial + NewSession + Run(\"true\") per node in goroutines, knownhosts callback")
	fmt.Printf("    loop:    %s\n", loopCmd("CONFIG", ""))
	fmt.Printf("    xargs:   %s\n", xargsCmd("CONFIG", 0, ""))
	fmt.Printf("    xargs25519: %s\n", xargsCmd("CONFIG", 0, "-o KexAlgorithms=curve25519-sha256"))
	fmt.Println("    ansible: ansible all -i INVENTORY -m command -a true -f N (ssh connection, host key checking on)")
	fmt.Println()

	b.uploads(*uploadNodes, *uploadMiB)
}

func setup(r *runner, n, runs int) *bench {
	h := sshtest.New(r)
	key := h.NewKey("id_ed25519", sshtest.Ed25519, "")
	h.Authorize("root", key)
	b := &bench{r: r, dir: h.Dir, key: key, runs: runs}
	var known, cfg strings.Builder
	for i := range n {
		node := h.StartNode(sshtest.NodeOptions{Name: fmt.Sprintf("n%d", i+1)})
		b.nodes = append(b.nodes, node)
		b.targets = append(b.targets, ssh.Target{Name: node.Name, Host: node.Host, Port: node.Port, User: "root"})
		known.WriteString(knownhosts.Line([]string{knownhosts.Normalize(node.Addr())}, node.HostKeys[0]) + "\n")
		fmt.Fprintf(&cfg, "Host %s\n  HostName %s\n  Port %d\n", node.Name, node.Host, node.Port)
	}
	b.known = filepath.Join(b.dir, "known_hosts")
	b.sshCfg = filepath.Join(b.dir, "ssh_config")
	fmt.Fprintf(&cfg, "Host *\n  User root\n  IdentityFile %s\n  IdentitiesOnly yes\n  BatchMode yes\n"+
		"  StrictHostKeyChecking yes\n  UserKnownHostsFile %s\n  ControlMaster no\n", key.Path, b.known)
	must(os.WriteFile(b.known, []byte(known.String()), 0o600))
	must(os.WriteFile(b.sshCfg, []byte(cfg.String()), 0o600))
	return b
}

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}

func (b *bench) median(f func() error) time.Duration {
	var ds []time.Duration
	for range b.runs {
		start := time.Now()
		if err := f(); err != nil {
			b.r.Fatalf("%v", err)
		}
		ds = append(ds, time.Since(start))
	}
	slices.Sort(ds)
	return ds[len(ds)/2]
}

func fmtDur(d time.Duration) string { return fmt.Sprintf("%.3f s", d.Seconds()) }

func (b *bench) config() ssh.Config {
	return ssh.Config{KeyFiles: []string{b.key.Path}, KnownHosts: b.known, Policy: ssh.Strict}
}

func (b *bench) labFanOut(n int) error {
	tr, err := ssh.New(b.config())
	if err != nil {
		return err
	}
	defer tr.Close()
	return tr.Each(context.Background(), b.targets[:n], n, func(ctx context.Context, c *ssh.Client) error {
		return c.Run(ctx, "true")
	})
}

func (b *bench) bareFanOut(n int) error {
	pem, err := os.ReadFile(b.key.Path)
	if err != nil {
		return err
	}
	signer, err := xssh.ParsePrivateKey(pem)
	if err != nil {
		return err
	}
	check, err := knownhosts.New(b.known)
	if err != nil {
		return err
	}
	cfg := &xssh.ClientConfig{User: "root", Auth: []xssh.AuthMethod{xssh.PublicKeys(signer)}, HostKeyCallback: check}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, t := range b.targets[:n] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := xssh.Dial("tcp", net.JoinHostPort(t.Host, strconv.Itoa(t.Port)), cfg)
			if err != nil {
				errs[i] = err
				return
			}
			defer c.Close()
			s, err := c.NewSession()
			if err != nil {
				errs[i] = err
				return
			}
			defer s.Close()
			errs[i] = s.Run("true")
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func loopCmd(cfg, opts string) string {
	return fmt.Sprintf(`for h in $(cat HOSTS); do ssh -F %s %s$h true || exit 1; done`, cfg, spaced(opts))
}

func xargsCmd(cfg string, n int, opts string) string {
	p := "N"
	if n > 0 {
		p = strconv.Itoa(n)
	}
	return fmt.Sprintf(`xargs -P %s -I{} ssh -F %s %s{} true < HOSTS`, p, cfg, spaced(opts))
}

func spaced(s string) string {
	if s == "" {
		return ""
	}
	return s + " "
}

// shell runs a command line with HOSTS naming a file of n host aliases.
func (b *bench) shell(n int, line string) error {
	hosts := filepath.Join(b.dir, fmt.Sprintf("hosts-%d", n))
	var names []string
	for _, node := range b.nodes[:n] {
		names = append(names, node.Name)
	}
	if err := os.WriteFile(hosts, []byte(strings.Join(names, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	line = strings.ReplaceAll(line, "HOSTS", hosts)
	out, err := exec.Command("bash", "-c", line).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", line, err, out)
	}
	return nil
}

func (b *bench) ansible(n int) error {
	inv := filepath.Join(b.dir, fmt.Sprintf("inventory-%d.ini", n))
	var s strings.Builder
	s.WriteString("[nodes]\n")
	for _, node := range b.nodes[:n] {
		fmt.Fprintf(&s, "%s ansible_host=%s ansible_port=%d\n", node.Name, node.Host, node.Port)
	}
	fmt.Fprintf(&s, "[all:vars]\nansible_user=root\nansible_ssh_private_key_file=%s\nansible_python_interpreter=/usr/bin/python3\n"+
		"ansible_ssh_common_args='-o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes'\n", b.key.Path, b.known)
	if err := os.WriteFile(inv, []byte(s.String()), 0o644); err != nil {
		return err
	}
	cp, err := os.MkdirTemp(b.dir, "ansible-cp-")
	if err != nil {
		return err
	}
	cmd := exec.Command("ansible", "all", "-i", inv, "-m", "command", "-a", "true", "-f", strconv.Itoa(n))
	cmd.Env = append(os.Environ(), "ANSIBLE_HOST_KEY_CHECKING=True", "ANSIBLE_SSH_CONTROL_PATH_DIR="+cp,
		"ANSIBLE_LOCAL_TEMP="+cp, "ANSIBLE_NOCOLOR=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("ansible: %v: %s", err, out)
	}
	return nil
}

// uploads compares lab's SFTP upload with parallel scp, to a disk and to
// tmpfs (the disk figure includes lab's fsync before rename; scp does not
// sync), and times a re-run of unchanged files.
func (b *bench) uploads(n, mib int) {
	src := filepath.Join(b.dir, "blob")
	f, err := os.Create(src)
	must(err)
	buf := make([]byte, 1<<20)
	for i := range mib {
		for j := range buf {
			buf[j] = byte(i*7 + j*13)
		}
		_, err := f.Write(buf)
		must(err)
	}
	must(f.Close())
	total := float64(n*mib) / 1 // MiB
	fmt.Printf("## Upload of %d MiB to each of %d nodes at once (total MiB/s)\n\n", mib, n)
	fmt.Println("| destination | lab SFTP (atomic, fsync) | parallel scp -c aes128-gcm |")
	fmt.Println("|---|---|---|")
	for _, base := range []string{"/var/tmp", "/dev/shm"} {
		dst, err := os.MkdirTemp(base, "lab-sshbench-")
		must(err)
		b.r.Cleanup(func() { os.RemoveAll(dst) })
		i := 0
		lab := b.median(func() error {
			i++
			return b.labUpload(n, src, filepath.Join(dst, fmt.Sprintf("lab-%d", i)))
		})
		scp := b.median(func() error {
			i++
			return b.scp(n, src, filepath.Join(dst, fmt.Sprintf("scp-%d", i)))
		})
		fmt.Printf("| %s (%s) | %.0f MiB/s (%s) | %.0f MiB/s (%s) |\n", base, fsType(base),
			total/lab.Seconds(), fmtDur(lab), total/scp.Seconds(), fmtDur(scp))
		// Free the space between destinations.
		os.RemoveAll(dst)
	}
	fmt.Println()
	fmt.Printf("    scp: for h in n1..n%d; do scp -F CONFIG -c aes128-gcm@openssh.com BLOB $h:DST & done; wait\n", n)
	fmt.Println("    lab: ssh.Transport.Each(ctx, targets, 0, Upload(File{Src: BLOB, Dst: DST})) (cipher: x/crypto default, aes128-gcm)")
	fmt.Println()

	// Re-run of unchanged files.
	dst, err := os.MkdirTemp("/var/tmp", "lab-sshbench-")
	must(err)
	defer os.RemoveAll(dst)
	tr, err := ssh.New(b.config())
	must(err)
	defer tr.Close()
	var mu sync.Mutex
	var first, again ssh.UploadStats
	up := func(into *ssh.UploadStats) time.Duration {
		start := time.Now()
		must(tr.Each(context.Background(), b.targets[:n], 0, func(ctx context.Context, c *ssh.Client) error {
			st, err := c.Upload(ctx, ssh.File{Src: src, Dst: filepath.Join(dst, c.Name())})
			mu.Lock()
			into.Bytes += st.Bytes
			into.Written += st.Written
			mu.Unlock()
			return err
		}))
		return time.Since(start)
	}
	d1 := up(&first)
	d2 := up(&again)
	fmt.Printf("## Re-run of an unchanged upload (%d MiB to %d nodes)\n\n", mib, n)
	fmt.Println("| run | files written | bytes sent | time |")
	fmt.Println("|---|---|---|---|")
	fmt.Printf("| first | %d | %d | %s |\n", first.Written, first.Bytes, fmtDur(d1))
	fmt.Printf("| re-run | %d | %d | %s |\n", again.Written, again.Bytes, fmtDur(d2))
	fmt.Println()
	fmt.Println("(the re-run's time is the remote sha256sum of each file, which matches)")
}

func (b *bench) labUpload(n int, src, dst string) error {
	tr, err := ssh.New(b.config())
	if err != nil {
		return err
	}
	defer tr.Close()
	return tr.Each(context.Background(), b.targets[:n], 0, func(ctx context.Context, c *ssh.Client) error {
		_, err := c.Upload(ctx, ssh.File{Src: src, Dst: dst + "-" + c.Name()})
		return err
	})
}

func (b *bench) scp(n int, src, dst string) error {
	var s strings.Builder
	for _, node := range b.nodes[:n] {
		fmt.Fprintf(&s, "scp -q -F %s -c aes128-gcm@openssh.com %s %s:%s-%s & ", b.sshCfg, src, node.Name, dst, node.Name)
	}
	s.WriteString("for j in $(jobs -p); do wait $j || exit 1; done")
	out, err := exec.Command("bash", "-c", s.String()).CombinedOutput()
	if err != nil {
		return fmt.Errorf("scp: %v: %s", err, out)
	}
	return nil
}

func fsType(path string) string {
	out, err := exec.Command("stat", "-f", "-c", "%T", path).Output()
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(out))
}
