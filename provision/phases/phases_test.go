package phases

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labctl/lab/provision/labfile"
	"github.com/labctl/lab/provision/state"
	"github.com/labctl/lab/provision/workflow"
	"github.com/labctl/lab/templates"
)

// fakeNode records what a phase asks of a node and answers from a script.
type fakeNode struct {
	mu       sync.Mutex
	cmds     []string
	uploads  map[string]templates.File
	answer   func(cmd string) (string, error)
	uploaded int
}

func (f *fakeNode) Run(_ context.Context, cmd string) (string, error) {
	f.mu.Lock()
	f.cmds = append(f.cmds, cmd)
	f.mu.Unlock()
	if f.answer != nil {
		return f.answer(cmd)
	}
	return "", nil
}

func (f *fakeNode) Upload(_ context.Context, files []templates.File) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, file := range files {
		f.uploads[file.Path] = file
	}
	f.uploaded += len(files)
	return len(files), nil
}

type fakeDialer map[string]*fakeNode

func (d fakeDialer) Dial(_ context.Context, node string) (Conn, error) { return d[node], nil }

const haLab = `apiVersion: lab/v1alpha1
kind: Lab
metadata: {name: t}
networks: [{name: lab, cidr: 10.9.0.0/24}]
controlPlane: {vip: 10.9.0.10}
nodes:
  - {name: cp1, roles: [control-plane], addresses: {lab: 10.9.0.11}}
  - {name: cp2, roles: [control-plane], addresses: {lab: 10.9.0.12}}
  - {name: cp3, roles: [control-plane], addresses: {lab: 10.9.0.13}}
  - {name: w1, roles: [worker], addresses: {lab: 10.9.0.21}}
`

// withFacts runs phases after a facts phase that does nothing: the test
// cluster's facts are set already.
func withFacts(phases ...workflow.Phase) []workflow.Phase {
	facts := workflow.Phase{Name: FactsPhase, Order: workflow.Local, Run: func(context.Context, string) error { return nil }}
	return append([]workflow.Phase{facts}, phases...)
}

func newTestRun(t *testing.T) (*Run, fakeDialer) {
	t.Helper()
	l, _, err := labfile.Parse("t.yaml", []byte(haLab))
	if err != nil {
		t.Fatal(err)
	}
	return newRunFor(t, l)
}

// newRunFor is a Run for lab l over fake nodes whose facts say Debian on
// eth0.
func newRunFor(t *testing.T, l *labfile.Lab) (*Run, fakeDialer) {
	t.Helper()
	dir, err := state.Open(t.TempDir(), "t")
	if err != nil {
		t.Fatal(err)
	}
	d := fakeDialer{}
	for _, n := range l.Nodes {
		d[n.Name] = &fakeNode{uploads: map[string]templates.File{}}
	}
	c := NewRun(l, dir, d, nil)
	for _, n := range l.Nodes {
		c.setFacts(n.Name, &Facts{OS: "debian", Arch: "x86_64", Interface: "eth0", Hostname: n.Name})
	}
	return c, d
}

func TestParseFacts(t *testing.T) {
	out := "os=ubuntu\nosversion=24.04\narch=x86_64\nkernel=6.8.0\nhostname=k8s-ctr\ncontainer=\npid1=systemd\n" +
		"addr=lo 127.0.0.1/8\naddr=eth0 10.0.2.15/24\naddr=eth1 192.168.10.100/24\nswap=/swap.img\nbin=kubeadm /usr/bin/kubeadm\nbin=helm \n"
	f, err := parseFacts(out, netip.MustParseAddr("192.168.10.100"))
	if err != nil {
		t.Fatal(err)
	}
	if f.Interface != "eth1" || !f.Systemd || f.OS != "ubuntu" || len(f.Swap) != 1 || f.Binaries["kubeadm"] == "" || f.Binaries["helm"] != "" {
		t.Errorf("facts %+v", f)
	}
	// The NAT address is never taken for the node network.
	_, err = parseFacts(out, netip.MustParseAddr("192.168.10.101"))
	if err == nil || !strings.Contains(err.Error(), "no interface holds the node address 192.168.10.101") ||
		!strings.Contains(err.Error(), "eth0 10.0.2.15/24, eth1 192.168.10.100/24") {
		t.Errorf("missing address error: %v", err)
	}
}

func TestKubernetesPhaseChecksEveryBinaryVersion(t *testing.T) {
	c, d := newTestRun(t)
	p := c.Kubernetes()
	d["cp1"].answer = func(string) (string, error) { return "v1.34.12\nKubernetes v1.34.12\nv1.34.12\n", nil }
	d["cp2"].answer = func(string) (string, error) { return "v1.34.12\nKubernetes v1.33.4\nv1.34.12\n", nil }
	if done, _ := p.Done(context.Background(), "cp1"); !done {
		t.Error("cp1 has every binary at the right version but is not done")
	}
	if done, _ := p.Done(context.Background(), "cp2"); done {
		t.Error("cp2's kubelet is at another version but counts as done")
	}
	if !strings.HasPrefix(kubernetesScript("v1.34.12"), "set -- 'v1.34' '1.34.12-1.1'\n") {
		t.Error("package script pins the wrong version")
	}
}

func TestInitUploadsPrivateConfigAndRunsKubeadm(t *testing.T) {
	c, d := newTestRun(t)
	cp1 := d["cp1"]
	initialised := false
	cp1.answer = func(cmd string) (string, error) {
		if strings.HasPrefix(cmd, "kubeadm init") {
			initialised = true
		}
		if strings.Contains(cmd, "get --raw=/readyz") && !initialised {
			return "", errFake
		}
		return "", nil
	}
	eng := &workflow.Engine{}
	if err := eng.Run(context.Background(), withFacts(c.Init())); err != nil {
		t.Fatal(err)
	}
	f, ok := cp1.uploads["/etc/lab/kubeadm/init.yaml"]
	if !ok || f.Mode.Perm() != 0o600 {
		t.Fatalf("init config not uploaded 0600: %+v", f.Mode)
	}
	sec, _ := c.State.Secrets()
	if !strings.Contains(string(f.Content), sec.BootstrapToken) {
		t.Error("init config lacks the lab's bootstrap token")
	}
	var ran string
	for _, cmd := range cp1.cmds {
		if strings.HasPrefix(cmd, "kubeadm init") {
			ran = cmd
		}
		if strings.Contains(cmd, sec.BootstrapToken) || strings.Contains(cmd, sec.CertificateKey) {
			t.Errorf("a secret is on a command line: %q", cmd)
		}
	}
	if ran != "kubeadm init --config /etc/lab/kubeadm/init.yaml --upload-certs" {
		t.Errorf("ran %q", ran)
	}
	// Done once the API answers: a second run does not init again.
	cp1.cmds = nil
	if err := eng.Run(context.Background(), withFacts(c.Init())); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range cp1.cmds {
		if strings.HasPrefix(cmd, "kubeadm init") {
			t.Error("init ran again on an initialised node")
		}
	}
}

var errFake = &fakeError{}

type fakeError struct{}

func (*fakeError) Error() string { return "exit status 1" }

func testCA(t *testing.T) []byte {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kubernetes"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// TestCAHashMatchesOpenSSL checks our discovery hash against the recipe in
// kubeadm's documentation, run with the real openssl.
func TestCAHashMatchesOpenSSL(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	ca := testCA(t)
	got, err := CAHash(ca)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", "openssl x509 -pubkey -noout | openssl pkey -pubin -outform der | sha256sum | cut -d' ' -f1")
	cmd.Stdin = strings.NewReader(string(ca))
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if want := "sha256:" + strings.TrimSpace(string(out)); got != want {
		t.Errorf("CAHash %s, openssl %s", got, want)
	}
}

func TestJoinsPinTheCAAndRenewCredentialsOnce(t *testing.T) {
	c, d := newTestRun(t)
	ca := testCA(t)
	d["cp1"].answer = func(cmd string) (string, error) {
		if cmd == "cat /etc/kubernetes/pki/ca.crt" {
			return string(ca), nil
		}
		return "", nil
	}
	for _, n := range []string{"cp2", "cp3", "w1"} {
		d[n].answer = func(cmd string) (string, error) {
			if strings.HasPrefix(cmd, "test -f /etc/kubernetes/kubelet.conf") {
				return "", errFake // not joined yet
			}
			return "", nil
		}
	}
	eng := &workflow.Engine{}
	if err := eng.Run(context.Background(), withFacts(c.JoinControlPlanes(), c.JoinWorkers())); err != nil {
		t.Fatal(err)
	}
	hash, _ := CAHash(ca)
	for _, n := range []string{"cp2", "cp3", "w1"} {
		f := d[n].uploads["/etc/lab/kubeadm/join.yaml"]
		if !strings.Contains(string(f.Content), hash) || f.Mode.Perm() != 0o600 {
			t.Errorf("%s: join config does not pin the CA hash or is not private", n)
		}
		if !strings.Contains(strings.Join(d[n].cmds, "\n"), "kubeadm join --config /etc/lab/kubeadm/join.yaml") {
			t.Errorf("%s: did not join: %v", n, d[n].cmds)
		}
	}
	if strings.Contains(string(d["w1"].uploads["/etc/lab/kubeadm/join.yaml"].Content), "certificateKey") {
		t.Error("a worker got the certificate key")
	}
	all := strings.Join(d["cp1"].cmds, "\n")
	if n := strings.Count(all, "kubeadm token create"); n != 1 {
		t.Errorf("token renewed %d times, want once", n)
	}
	if n := strings.Count(all, "kubeadm init phase upload-certs"); n != 1 {
		t.Errorf("certificates uploaded %d times, want once", n)
	}
}

func TestResetAndAuditScripts(t *testing.T) {
	vip := netip.MustParseAddr("10.9.0.10")
	r := resetScript(vip, "unix:///run/containerd/containerd.sock", "10.244.0.0/16")
	for _, want := range []string{"kubeadm reset -f", "/var/lib/etcd", "/etc/cni/net.d", "/sys/fs/bpf/lab", "ipvsadm --clear",
		"'10.9.0.10'", "grep -Ev '(KUBE|CILIUM)'", "reset_cilium \"$pods\"", "'10.244.0.0/16'",
		"/sys/fs/bpf/tc", "/var/run/cilium", "/opt/cni/bin/cilium-cni", "/etc/cni/net.d/05-cilium.conflist",
		"/etc/sysctl.d/99-zzz-override_cilium.conf", "rm -rf --one-file-system"} {
		if !strings.Contains(r, want) {
			t.Errorf("reset script lacks %q", want)
		}
	}
	a := auditScript(vip, "10.244.0.0/16")
	if !regexp.MustCompile(`service \$u is running`).MatchString(a) {
		t.Error("audit does not look at services")
	}
	if !strings.Contains(a, "audit_cilium \"$pods\"") || !strings.Contains(a, "/opt/cni/bin/cilium-cni") {
		t.Error("audit does not look for Cilium's traces")
	}
}

// TestLabNodeCredential checks how lab-node's ServiceAccount token is read
// from the first control plane and what kubeconfig each node gets: the
// Secret may not be filled in yet, a filled one must hold a JWT and a PEM
// CA, errors never quote the token, and the file is private.
func TestLabNodeCredential(t *testing.T) {
	const token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJsYWItbm9kZSJ9.c2lnbmF0dXJl"
	ca := testCA(t)
	enc := func(s []byte) string { return base64.StdEncoding.EncodeToString(s) }
	filled := enc([]byte(token)) + " " + enc(ca)

	for _, tc := range []struct {
		name, out string
		ok        bool
		err       string
	}{
		{name: "not filled in", out: "", ok: false},
		{name: "CA only", out: " " + enc(ca), ok: false},
		{name: "filled in", out: filled, ok: true},
		{name: "not a JWT", out: enc([]byte("secret-but-no-jwt")) + " " + enc(ca), err: "holds no token"},
		{name: "CA not PEM", out: enc([]byte(token)) + " " + enc([]byte("junk")), err: "no PEM certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cred, ok, err := parseLabNodeCred(tc.out)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				if strings.Contains(err.Error(), "secret-but-no-jwt") || strings.Contains(err.Error(), token) {
					t.Fatalf("error quotes the secret: %v", err)
				}
				return
			}
			if err != nil || ok != tc.ok {
				t.Fatalf("ok, err = %v, %v; want %v, nil", ok, err, tc.ok)
			}
			if ok && (cred.token != token || string(cred.ca) != string(ca)) {
				t.Fatalf("cred = %+v", cred)
			}
		})
	}

	// The whole path on a fake cluster: apply once from cp1, poll until the
	// controller fills the Secret in, then render each node's kubeconfig.
	c, d := newTestRun(t)
	polls := 0
	d["cp1"].answer = func(cmd string) (string, error) {
		if cmd == readLabNodeToken {
			if polls++; polls < 2 {
				return " ", nil
			}
			return filled, nil
		}
		return "", nil
	}
	cred, err := c.ensureLabNodeCred(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if again, err := c.ensureLabNodeCred(t.Context()); err != nil || again.token != token {
		t.Fatalf("second call: %v", err)
	}
	applies := 0
	for _, cmd := range d["cp1"].cmds {
		if strings.Contains(cmd, "apply -f '"+templates.LabNodeRBACPath+"'") {
			applies++
		}
	}
	if applies != 1 {
		t.Fatalf("RBAC applied %d times, want once", applies)
	}
	if rbac, ok := d["cp1"].uploads[templates.LabNodeRBACPath]; !ok || !strings.Contains(string(rbac.Content), "name: "+templates.LabNodeTokenSecret) {
		t.Fatalf("cp1 did not receive %s before applying it", templates.LabNodeRBACPath)
	}
	// A stand-in lab-node beside lab, for when none is embedded.
	c.Sources.LabNodeDir = t.TempDir()
	if err := os.WriteFile(filepath.Join(c.Sources.LabNodeDir, "lab-node-linux-amd64"), []byte("lab-node"), 0o755); err != nil {
		t.Fatal(err)
	}
	files, err := c.labNodeFiles("w1", cred)
	if err != nil {
		t.Fatal(err)
	}
	var conf *templates.File
	for i := range files {
		if files[i].Path == templates.LabNodeConfPath {
			conf = &files[i]
		}
	}
	if conf == nil {
		t.Fatalf("no %s among %d files", templates.LabNodeConfPath, len(files))
	}
	if conf.Mode != 0o600 {
		t.Errorf("%s mode %o, want 600", templates.LabNodeConfPath, conf.Mode)
	}
	for _, want := range []string{"server: https://10.9.0.10:", "token: " + token, "certificate-authority-data: " + enc(ca)} {
		if !strings.Contains(string(conf.Content), want) {
			t.Errorf("%s lacks %q:\n%s", templates.LabNodeConfPath, want, conf.Content)
		}
	}
}

// TestProgramStamp runs the kubernetes phase's stamp and sum scripts with
// the real shell and coreutils: without a stamp a program is hashed; with
// one, a program that stats as recorded is taken at the stamp's word
// (here a made-up sum proves the file was not read); a program written
// since, in place or replaced, is hashed again.
func TestProgramStamp(t *testing.T) {
	dir := t.TempDir()
	stamp := filepath.Join(dir, "etc", "programs.stamp")
	prog := filepath.Join(dir, "kubeadm")
	if err := os.WriteFile(prog, []byte("kubeadm v1"), 0o755); err != nil {
		t.Fatal(err)
	}
	sums := func() string {
		t.Helper()
		out, err := exec.Command("bash", "-c", sumScript(stamp, []string{prog, filepath.Join(dir, "missing")})).CombinedOutput()
		if err != nil {
			t.Fatalf("sum script: %v\n%s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	real := prog + " " + sha256Hex([]byte("kubeadm v1"))
	if got := sums(); got != real {
		t.Fatalf("without a stamp: %q, want %q", got, real)
	}
	const madeUp = "00000000000000000000000000000000000000000000000000000000000000ff"
	bins := []LocalFile{{Dst: prog}}
	if out, err := exec.Command("bash", "-c", stampScript("", stamp, bins, []string{madeUp})).CombinedOutput(); err != nil {
		t.Fatalf("stamp script: %v\n%s", err, out)
	}
	if got := sums(); got != prog+" "+madeUp {
		t.Fatalf("with a current stamp: %q, want the stamp's sum", got)
	}
	// Written in place (same inode), then replaced by a file of the same
	// size (another inode): hashed again either way.
	if err := os.WriteFile(prog, []byte("kubeadm v2.0"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got, want := sums(), prog+" "+sha256Hex([]byte("kubeadm v2.0")); got != want {
		t.Fatalf("after a write in place: %q, want %q", got, want)
	}
	if out, err := exec.Command("bash", "-c", stampScript("", stamp, bins, []string{madeUp})).CombinedOutput(); err != nil {
		t.Fatalf("stamp script: %v\n%s", err, out)
	}
	tmp := prog + ".new"
	if err := os.WriteFile(tmp, []byte("kubeadm v3.0"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, prog); err != nil {
		t.Fatal(err)
	}
	if got, want := sums(), prog+" "+sha256Hex([]byte("kubeadm v3.0")); got != want {
		t.Fatalf("after a replace: %q, want %q", got, want)
	}
}
