package kubeadm

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	kubeletconfig "k8s.io/kubelet/config/v1beta1"
	kubeadmapi "k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm"
	"k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm/scheme"
	"k8s.io/kubernetes/cmd/kubeadm/app/componentconfigs"
	kubeadmconstants "k8s.io/kubernetes/cmd/kubeadm/app/constants"

	"github.com/labctl/lab/provision/labfile"
)

// base is a small HA lab; tests append to it or replace lines of it.
const base = `apiVersion: lab/v1alpha1
kind: Lab
metadata: {name: unit}
provider: {type: docker}
networks: [{name: lab, cidr: 172.31.0.0/24}]
kubernetes:
  version: v1.34.12
  podSubnet: 10.244.0.0/16
controlPlane: {mode: vip, vip: 172.31.0.10}
nodes:
  - {name: cp1, roles: [control-plane], addresses: {lab: 172.31.0.11}}
  - {name: cp2, roles: [control-plane], addresses: {lab: 172.31.0.12}}
  - {name: cp3, roles: [control-plane], addresses: {lab: 172.31.0.13}}
`

const worker = "  - {name: w1, roles: [worker], addresses: {lab: 172.31.0.21}}\n"

func parse(t *testing.T, text string) *labfile.Lab {
	t.Helper()
	l, _, err := labfile.Parse("unit.yaml", []byte(text))
	if err != nil {
		t.Fatalf("the lab file itself is refused: %v", err)
	}
	return l
}

// realSecrets returns random secrets of the right shape, as `lab up` makes.
func realSecrets(t *testing.T) Secrets {
	t.Helper()
	const alnum = "abcdefghijklmnopqrstuvwxyz0123456789"
	tok := make([]byte, 23)
	if _, err := rand.Read(tok); err != nil {
		t.Fatal(err)
	}
	for i := range tok {
		tok[i] = alnum[int(tok[i])%len(alnum)]
	}
	tok[6] = '.'
	key := make([]byte, 32)
	hash := make([]byte, 32)
	rand.Read(key)
	rand.Read(hash)
	return Secrets{
		Token:          string(tok),
		CertificateKey: hex.EncodeToString(key),
		CACertHashes:   []string{"sha256:" + hex.EncodeToString(hash)},
	}
}

func assertNoSecrets(t *testing.T, msg string, s Secrets) {
	t.Helper()
	_, secret, _ := strings.Cut(s.Token, ".")
	for _, v := range []string{s.Token, secret, s.CertificateKey} {
		if v != "" && strings.Contains(msg, v) {
			t.Errorf("error leaks a secret: %s", msg)
		}
	}
}

// decodeInit reads a rendered init configuration back the way kubeadm does.
func decodeInit(t *testing.T, data []byte) *kubeadmapi.InitConfiguration {
	t.Helper()
	docs, err := splitStrict(data)
	if err != nil {
		t.Fatal(err)
	}
	initDoc, _ := findKind(docs, kubeadmconstants.InitConfigurationKind)
	clusterDoc, _ := findKind(docs, kubeadmconstants.ClusterConfigurationKind)
	cfg := &kubeadmapi.InitConfiguration{}
	if err := runtime.DecodeInto(scheme.Codecs.UniversalDecoder(), initDoc, cfg); err != nil {
		t.Fatal(err)
	}
	if err := runtime.DecodeInto(scheme.Codecs.UniversalDecoder(), clusterDoc, &cfg.ClusterConfiguration); err != nil {
		t.Fatal(err)
	}
	if err := componentconfigs.FetchFromDocumentMap(&cfg.ClusterConfiguration, docs); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func decodeJoin(t *testing.T, data []byte) *kubeadmapi.JoinConfiguration {
	t.Helper()
	docs, err := splitStrict(data)
	if err != nil {
		t.Fatal(err)
	}
	joinDoc, _ := findKind(docs, kubeadmconstants.JoinConfigurationKind)
	cfg := &kubeadmapi.JoinConfiguration{}
	if err := runtime.DecodeInto(scheme.Codecs.UniversalDecoder(), joinDoc, cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func kubeletArg(args []kubeadmapi.Arg, name string) (string, bool) {
	for _, a := range args {
		if a.Name == name {
			return a.Value, true
		}
	}
	return "", false
}

// TestBadPodSubnet: a pod subnet smaller than one node's /24 share, or one
// that is not a subnet at all, is refused with kubeadm's own message (the
// lab file's validation catches both first; kubeadm is the last judge).
func TestBadPodSubnet(t *testing.T) {
	l := parse(t, base+worker)
	l.Kubernetes.PodSubnet = "10.244.0.0/25"
	_, err := Init(l, l.Node("cp1"), testFacts, Placeholders())
	if err == nil || !strings.Contains(err.Error(), `networking.podSubnet: Invalid value: "10.244.0.0/25"`) {
		t.Fatalf("Init with a /25 pod subnet: got %v, want kubeadm's networking.podSubnet message", err)
	}
	l.Kubernetes.PodSubnet = "10.244.0.0/33"
	_, err = Init(l, l.Node("cp1"), testFacts, Placeholders())
	if err == nil || !strings.Contains(err.Error(), `networking.podSubnet: Invalid value: "10.244.0.0/33": couldn't parse subnet`) {
		t.Fatalf("Init with a /33 pod subnet: got %v", err)
	}
	// The node is named once, by the caller (nodefiles.For, or the
	// phase engine); the file is named here.
	if !strings.HasPrefix(err.Error(), "kubeadm rejects "+InitPath+": ") || strings.Contains(err.Error(), "cp1") {
		t.Errorf("error does not name the file, or names the node: %v", err)
	}
}

// TestEveryProblemListed: kubeadm's field errors all come back at once.
func TestEveryProblemListed(t *testing.T) {
	l := parse(t, base+worker)
	l.Kubernetes.PodSubnet = "10.244.0.0/33"
	l.Kubernetes.ServiceSubnet = "10.96.0.0/40"
	_, err := Init(l, l.Node("cp1"), testFacts, Placeholders())
	if err == nil || !strings.Contains(err.Error(), "networking.podSubnet") || !strings.Contains(err.Error(), "networking.serviceSubnet") {
		t.Fatalf("got %v, want both subnet errors", err)
	}
}

// TestKubernetesVersionSkew: kubeadm v1.34 deploys 1.33 and 1.34 control
// planes only. The lab file refuses older versions itself; kubeadm's own
// check stays as a second line for labs built in code.
func TestKubernetesVersionSkew(t *testing.T) {
	l := parse(t, base+worker)
	l.Kubernetes.Version = "v1.32.5"
	_, err := Init(l, l.Node("cp1"), testFacts, Placeholders())
	if err == nil || !strings.Contains(err.Error(), "control plane version >= 1.33") {
		t.Fatalf("Init of a v1.32 lab: got %v, want kubeadm's skew message", err)
	}
	l = parse(t, strings.Replace(base, "v1.34.12", "v1.33.4", 1)+worker)
	if _, err := Init(l, l.Node("cp1"), testFacts, Placeholders()); err != nil {
		t.Fatalf("Init of a v1.33 lab: %v", err)
	}
}

// TestSecretsNeverInErrors: neither kubeadm's messages (which quote values)
// nor lab's own ever carry the token or the certificate key.
func TestSecretsNeverInErrors(t *testing.T) {
	s := realSecrets(t)
	l := parse(t, base+worker)
	l.Kubernetes.PodSubnet = "10.244.0.0/33"
	for _, n := range []string{"cp1", "cp2", "w1"} {
		_, err := Files(l, l.Node(n), testFacts, s)
		if n == "cp1" && err == nil {
			t.Fatal("want an error for the bad pod subnet")
		}
		if err != nil {
			assertNoSecrets(t, err.Error(), s)
		}
	}

	bad := s
	bad.Token = strings.ToUpper(s.Token) // wrong shape: upper case
	for _, n := range []string{"cp1", "cp2"} {
		_, err := Files(l, l.Node(n), testFacts, bad)
		if err == nil || !strings.Contains(err.Error(), "bootstrap token is not of the form") {
			t.Fatalf("%s: got %v, want the token shape error", n, err)
		}
		assertNoSecrets(t, err.Error(), bad)
	}
	bad = s
	bad.CertificateKey = s.CertificateKey[:40]
	_, err := Files(l, l.Node("cp2"), testFacts, bad)
	if err == nil || !strings.Contains(err.Error(), "certificate key") {
		t.Fatalf("got %v, want the certificate key error", err)
	}
	assertNoSecrets(t, err.Error(), bad)

	// kubeadm's field errors on secret fields lose their value.
	err = fieldErrors(field.ErrorList{
		field.Invalid(field.NewPath("discovery", "bootstrapToken", "token"), s.Token, "bad token"),
		field.Invalid(field.NewPath("controlPlane", "certificateKey"), s.CertificateKey, "bad key"),
		field.Invalid(field.NewPath("networking", "podSubnet"), "10.0.0.0/33", "bad subnet"),
	})
	assertNoSecrets(t, err.Error(), s)
	if !strings.Contains(err.Error(), `"10.0.0.0/33"`) {
		t.Errorf("non-secret values must stay: %v", err)
	}
	if got := redact("token "+s.Token+" key "+s.CertificateKey, s); strings.Contains(got, s.Token) || strings.Contains(got, s.CertificateKey) {
		t.Errorf("redact left a secret: %s", got)
	}
}

// TestKubeadmVersionMatchesGoMod keeps KubeadmVersion equal to the
// k8s.io/kubernetes version lab is built with.
func TestKubeadmVersionMatchesGoMod(t *testing.T) {
	if got := goModKubernetes(t); got != KubeadmVersion {
		t.Fatalf("go.mod requires k8s.io/kubernetes %s but KubeadmVersion is %s: update it", got, KubeadmVersion)
	}
}

func goModKubernetes(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "k8s.io/kubernetes" && strings.HasPrefix(f[1], "v") {
			return f[1]
		}
	}
	t.Fatal("go.mod has no k8s.io/kubernetes requirement")
	return ""
}

func TestSecretsShape(t *testing.T) {
	if err := Placeholders().check(true); err != nil {
		t.Fatalf("placeholders: %v", err)
	}
	good := realSecrets(t)
	for name, mut := range map[string]func(*Secrets){
		"short token":   func(s *Secrets) { s.Token = "abc.def" },
		"no dot":        func(s *Secrets) { s.Token = strings.Replace(s.Token, ".", "x", 1) },
		"key not hex":   func(s *Secrets) { s.CertificateKey = strings.Repeat("z", 64) },
		"key too short": func(s *Secrets) { s.CertificateKey = s.CertificateKey[:62] },
		"no hash":       func(s *Secrets) { s.CACertHashes = nil },
		"hash no algo":  func(s *Secrets) { s.CACertHashes = []string{strings.TrimPrefix(s.CACertHashes[0], "sha256:")} },
		"hash short":    func(s *Secrets) { s.CACertHashes = []string{s.CACertHashes[0][:20]} },
	} {
		s := good
		s.CACertHashes = slices.Clone(good.CACertHashes)
		mut(&s)
		if err := s.check(true); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestContent checks, for every node of every lab in labs/, what the
// rendered files mean once kubeadm has decoded them.
func TestContent(t *testing.T) {
	all := labs(t)
	s := realSecrets(t)
	for _, name := range sortedNames(all) {
		l := all[name]
		endpoint := l.EndpointString()
		host, _ := l.Endpoint()
		for i := range l.Nodes {
			n := &l.Nodes[i]
			t.Run(name+"/"+n.Name, func(t *testing.T) {
				files, err := Files(l, n, testFacts, s)
				if err != nil {
					t.Fatal(err)
				}
				if !n.HasRole(labfile.RoleControlPlane) && !n.HasRole(labfile.RoleWorker) {
					if len(files) != 0 {
						t.Fatalf("a %v node gets kubeadm files: %v", n.Roles, files)
					}
					return
				}
				for _, f := range files {
					if f.Mode != 0o600 {
						t.Errorf("%s: mode %o, want 0600 (it holds secrets)", f.Path, f.Mode)
					}
				}
				ip := l.NodeIP(n).String()
				var reg kubeadmapi.NodeRegistrationOptions
				if l.ControlPlanes()[0] == n {
					if files[0].Path != InitPath {
						t.Fatalf("first control plane gets %s, want %s", files[0].Path, InitPath)
					}
					cfg := decodeInit(t, files[0].Content)
					reg = cfg.NodeRegistration
					if cfg.ControlPlaneEndpoint != endpoint {
						t.Errorf("controlPlaneEndpoint %q, want %q", cfg.ControlPlaneEndpoint, endpoint)
					}
					for _, want := range append([]string{host, "127.0.0.1"}, cpIPs(l)...) {
						if !slices.Contains(cfg.APIServer.CertSANs, want) {
							t.Errorf("certSANs %v lack %s", cfg.APIServer.CertSANs, want)
						}
					}
					if cfg.LocalAPIEndpoint.AdvertiseAddress != ip || int(cfg.LocalAPIEndpoint.BindPort) != l.ControlPlane.APIPort {
						t.Errorf("localAPIEndpoint %+v, want %s:%d", cfg.LocalAPIEndpoint, ip, l.ControlPlane.APIPort)
					}
					if len(cfg.BootstrapTokens) != 1 || cfg.BootstrapTokens[0].Token.String() != s.Token {
						t.Fatalf("bootstrap tokens: want exactly the given one")
					}
					if ttl := cfg.BootstrapTokens[0].TTL.Duration; ttl <= 0 || ttl > 24*time.Hour {
						t.Errorf("token ttl %v: want a short, finite ttl", ttl)
					}
					if multi := len(l.ControlPlanes()) > 1; multi != (cfg.CertificateKey == s.CertificateKey) {
						t.Errorf("certificateKey set=%v with %d control planes", cfg.CertificateKey != "", len(l.ControlPlanes()))
					}
					k := l.Kubernetes
					if cfg.Networking.PodSubnet != k.PodSubnet || cfg.Networking.ServiceSubnet != k.ServiceSubnet || cfg.Networking.DNSDomain != k.DNSDomain {
						t.Errorf("networking %+v, want %s %s %s", cfg.Networking, k.PodSubnet, k.ServiceSubnet, k.DNSDomain)
					}
					if cfg.KubernetesVersion != k.Version {
						t.Errorf("kubernetesVersion %q, want %q", cfg.KubernetesVersion, k.Version)
					}
					skips := slices.Contains(cfg.SkipPhases, "addon/kube-proxy")
					if skips == k.KubeProxyEnabled() || cfg.Proxy.Disabled == k.KubeProxyEnabled() {
						t.Errorf("kube-proxy enabled=%v but skipPhases=%v proxy.disabled=%v", k.KubeProxyEnabled(), cfg.SkipPhases, cfg.Proxy.Disabled)
					}
					kc, ok := cfg.ComponentConfigs[kubeletconfig.GroupName]
					if !ok {
						t.Fatal("no KubeletConfiguration")
					}
					if d := kc.Get().(*kubeletconfig.KubeletConfiguration).CgroupDriver; d != "systemd" {
						t.Errorf("kubelet cgroupDriver %q, want systemd", d)
					}
				} else {
					if files[0].Path != JoinPath {
						t.Fatalf("got %s, want %s", files[0].Path, JoinPath)
					}
					cfg := decodeJoin(t, files[0].Content)
					reg = cfg.NodeRegistration
					d := cfg.Discovery.BootstrapToken
					if d == nil || d.APIServerEndpoint != endpoint || d.Token != s.Token {
						t.Fatalf("discovery %+v: want the token and endpoint %s", d, endpoint)
					}
					if d.UnsafeSkipCAVerification || !slices.Equal(d.CACertHashes, s.CACertHashes) {
						t.Errorf("discovery must pin the CA: %+v", d)
					}
					if n.HasRole(labfile.RoleControlPlane) {
						cp := cfg.ControlPlane
						if cp == nil || cp.CertificateKey != s.CertificateKey || cp.LocalAPIEndpoint.AdvertiseAddress != ip || int(cp.LocalAPIEndpoint.BindPort) != l.ControlPlane.APIPort {
							t.Errorf("control-plane join %+v: want key and %s:%d", cp, ip, l.ControlPlane.APIPort)
						}
					} else if cfg.ControlPlane != nil {
						t.Errorf("a worker joins as a control plane")
					}
				}
				if reg.Name != n.Name || reg.CRISocket != l.Kubernetes.CRISocket {
					t.Errorf("nodeRegistration %q %q", reg.Name, reg.CRISocket)
				}
				if got, _ := kubeletArg(reg.KubeletExtraArgs, "node-ip"); got != ip || got == "10.0.2.15" {
					t.Errorf("kubelet node-ip %q, want the lab-network address %s", got, ip)
				}
				cpTaint := slices.ContainsFunc(reg.Taints, func(x corev1.Taint) bool { return x.Key == kubeadmconstants.LabelNodeRoleControlPlane })
				if want := n.HasRole(labfile.RoleControlPlane) && len(l.Workers()) > 0; cpTaint != want {
					t.Errorf("control-plane taint %v, want %v", cpTaint, want)
				}
			})
		}
	}
}

func cpIPs(l *labfile.Lab) []string {
	var out []string
	for _, cp := range l.ControlPlanes() {
		out = append(out, l.NodeIP(cp).String())
	}
	return out
}

// TestTaints: without workers the control planes must take pods, so they
// get no taint (an explicit empty list, since kubeadm reads a missing list
// as "add the default taint"); user taints are kept.
func TestTaints(t *testing.T) {
	l := parse(t, base)
	data, err := Init(l, l.Node("cp1"), testFacts, Placeholders())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "  taints: []\n") {
		t.Errorf("no-worker lab: want taints: [] in\n%s", data)
	}
	if taints := decodeInit(t, data).NodeRegistration.Taints; taints == nil || len(taints) != 0 {
		t.Errorf("no-worker lab: control plane taints %v, want an empty list", taints)
	}

	l = parse(t, base+worker+
		"  - {name: both, roles: [control-plane, worker], addresses: {lab: 172.31.0.14}, taints: [{key: gpu, value: \"yes\", effect: NoSchedule}]}\n"+
		"  - {name: w2, roles: [worker], addresses: {lab: 172.31.0.22}, taints: [{key: dedicated, value: infra, effect: NoExecute}]}\n")
	data, err = Join(l, l.Node("both"), Placeholders())
	if err != nil {
		t.Fatal(err)
	}
	want := []corev1.Taint{{Key: "gpu", Value: "yes", Effect: corev1.TaintEffectNoSchedule}}
	if got := decodeJoin(t, data).NodeRegistration.Taints; !slices.Equal(got, want) {
		t.Errorf("control plane that is also a worker: taints %v, want %v", got, want)
	}
	data, err = Join(l, l.Node("w2"), Placeholders())
	if err != nil {
		t.Fatal(err)
	}
	want = []corev1.Taint{{Key: "dedicated", Value: "infra", Effect: corev1.TaintEffectNoExecute}}
	if got := decodeJoin(t, data).NodeRegistration.Taints; !slices.Equal(got, want) {
		t.Errorf("worker taints %v, want %v", got, want)
	}
}

// TestLabels: labels become one sorted kubelet --node-labels; labels the
// kubelet may not set on itself are refused before the kubelet refuses to
// start.
func TestLabels(t *testing.T) {
	l := parse(t, base+"  - {name: w1, roles: [worker], addresses: {lab: 172.31.0.21}, labels: {zone: b, app.example.com/tier: web, node.kubernetes.io/pool: blue}}\n")
	data, err := Join(l, l.Node("w1"), Placeholders())
	if err != nil {
		t.Fatal(err)
	}
	got, _ := kubeletArg(decodeJoin(t, data).NodeRegistration.KubeletExtraArgs, "node-labels")
	if want := "app.example.com/tier=web,node.kubernetes.io/pool=blue,zone=b"; got != want {
		t.Errorf("node-labels %q, want %q", got, want)
	}

	// The lab file refuses such labels; Join checks again for labs built
	// in code.
	l.Node("w1").Labels = map[string]string{"node-role.kubernetes.io/worker": ""}
	if _, err := Join(l, l.Node("w1"), Placeholders()); err == nil || !strings.Contains(err.Error(), `label "node-role.kubernetes.io/worker"`) {
		t.Errorf("restricted label: got %v", err)
	}
}

// TestPatches: patches land in kubeadm's patch directory under names kubeadm
// parses (target, position suffix, +type), control planes get all of them,
// workers only the kubelet ones, and a node without patches has no
// patches.directory (kubeadm fails on a missing directory).
func TestPatches(t *testing.T) {
	text := strings.Replace(base, "  podSubnet: 10.244.0.0/16\n", `  podSubnet: 10.244.0.0/16
  patches:
    - target: kube-apiserver
      patch: |
        spec:
          priorityClassName: system-node-critical
    - target: kubeletconfiguration
      type: merge
      patch: |
        maxPods: 50
    - target: kube-apiserver
      type: json
      patch: |
        - op: add
          path: /metadata/labels/lab
          value: "yes"
`, 1) + worker
	l := parse(t, text)
	files, err := Files(l, l.Node("cp1"), testFacts, Placeholders())
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, f := range files {
		paths = append(paths, f.Path)
	}
	want := []string{InitPath,
		PatchesDir + "/kube-apiserver00+strategic.yaml",
		PatchesDir + "/kube-apiserver02+json.yaml",
		PatchesDir + "/kubeletconfiguration01+merge.yaml",
	}
	if !slices.Equal(paths, want) {
		t.Errorf("cp1 files %v, want %v", paths, want)
	}
	if p := decodeInit(t, files[0].Content).Patches; p == nil || p.Directory != PatchesDir {
		t.Errorf("init patches %+v, want directory %s", p, PatchesDir)
	}
	if got := string(files[3].Content); got != "maxPods: 50\n" {
		t.Errorf("patch body %q", got)
	}

	files, err = Files(l, l.Node("w1"), testFacts, Placeholders())
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 || files[1].Path != PatchesDir+"/kubeletconfiguration01+merge.yaml" {
		t.Errorf("worker files %v, want join.yaml and the kubelet patch", files)
	}
	if p := decodeJoin(t, files[0].Content).Patches; p == nil || p.Directory != PatchesDir {
		t.Errorf("worker join patches %+v", p)
	}

	l = parse(t, strings.Replace(text, "    - target: kubeletconfiguration\n      type: merge\n      patch: |\n        maxPods: 50\n", "", 1))
	files, err = Files(l, l.Node("w1"), testFacts, Placeholders())
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 || decodeJoin(t, files[0].Content).Patches != nil {
		t.Errorf("worker without kubelet patches: files %v must not name a patch directory", files)
	}
}

// TestRoles: who runs init, who joins, who gets nothing.
func TestRoles(t *testing.T) {
	l := parse(t, strings.Replace(base, "  - {name: cp1,", "  - {name: lb1, roles: [loadbalancer], addresses: {lab: 172.31.0.8}}\n  - {name: cp1,", 1)+worker)
	if files, err := Files(l, l.Node("lb1"), testFacts, Placeholders()); err != nil || files != nil {
		t.Errorf("load balancer node: %v %v, want nothing", files, err)
	}
	if _, err := Init(l, l.Node("cp2"), testFacts, Placeholders()); err == nil || !strings.Contains(err.Error(), "only the first control plane (cp1)") {
		t.Errorf("Init on cp2: %v", err)
	}
	if _, err := Join(l, l.Node("cp1"), Placeholders()); err == nil || !strings.Contains(err.Error(), "runs kubeadm init") {
		t.Errorf("Join on cp1: %v", err)
	}
	if _, err := Join(l, l.Node("lb1"), Placeholders()); err == nil {
		t.Error("Join on a load balancer: no error")
	}
	if got := InitArgs(l); !slices.Equal(got, []string{"init", "--config", InitPath, "--upload-certs"}) {
		t.Errorf("InitArgs %v", got)
	}
	single := parse(t, "apiVersion: lab/v1alpha1\nkind: Lab\nmetadata: {name: one}\nnetworks: [{name: lab, cidr: 172.31.0.0/24}]\nnodes:\n  - {name: cp1, roles: [control-plane], addresses: {lab: 172.31.0.11}}\n")
	if got := InitArgs(single); slices.Contains(got, "--upload-certs") {
		t.Errorf("single control plane uploads certs: %v", got)
	}
	data, err := Init(single, single.Node("cp1"), testFacts, Placeholders())
	if err != nil {
		t.Fatal(err)
	}
	if cfg := decodeInit(t, data); cfg.CertificateKey != "" || cfg.ControlPlaneEndpoint != "172.31.0.11:6443" {
		t.Errorf("single: certificateKey %q endpoint %q", cfg.CertificateKey, cfg.ControlPlaneEndpoint)
	}
}

// TestExternalEndpoint: in external mode the user's name is the endpoint
// and a SAN.
func TestExternalEndpoint(t *testing.T) {
	l := parse(t, strings.Replace(base, "controlPlane: {mode: vip, vip: 172.31.0.10}", "controlPlane: {mode: external, address: api.lab.example, lbPort: 443}", 1)+worker)
	data, err := Init(l, l.Node("cp1"), testFacts, Placeholders())
	if err != nil {
		t.Fatal(err)
	}
	cfg := decodeInit(t, data)
	if !slices.Contains(cfg.APIServer.CertSANs, "api.lab.example") {
		t.Errorf("certSANs %v lack the external name", cfg.APIServer.CertSANs)
	}
	if cfg.ControlPlaneEndpoint != l.EndpointString() || !strings.HasSuffix(cfg.ControlPlaneEndpoint, ":443") {
		t.Errorf("endpoint %q, want %q", cfg.ControlPlaneEndpoint, l.EndpointString())
	}
}

// TestKubeProxyMasqueradesForBuiltin: the builtin datapath needs kube-proxy
// to masquerade every Service connection; other CNIs get kubeadm's default.
func TestKubeProxyMasqueradesForBuiltin(t *testing.T) {
	all := labs(t)
	for name, want := range map[string]bool{"ci": true, "ha": true, "cilium-study": false} {
		l := all[name]
		data, err := Init(l, l.ControlPlanes()[0], testFacts, Placeholders())
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(string(data), "masqueradeAll: true"); got != want {
			t.Errorf("%s: masqueradeAll %v, want %v", name, got, want)
		}
	}
}

// TestContainerNodesIgnoreHostDisk: container nodes see the host's disk, so
// their kubelets must not evict pods or collect images for its free space;
// VMs keep the kubelet's defaults.
func TestContainerNodesIgnoreHostDisk(t *testing.T) {
	l := labs(t)["ci"]
	for _, container := range []bool{true, false} {
		f := testFacts
		f.Container = container
		data, err := Init(l, l.ControlPlanes()[0], f, Placeholders())
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"nodefs.available: 0%", "imagefs.available: 0%", "memory.available: 100Mi", "imageGCHighThresholdPercent: 100"} {
			if got := strings.Contains(string(data), want); got != container {
				t.Errorf("container=%v: %q present %v", container, want, got)
			}
		}
	}
}
