package phases

import (
	"context"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/labctl/lab/provision/fetch"
	"github.com/labctl/lab/provision/labfile"
	"github.com/labctl/lab/provision/nodebin"
	"github.com/labctl/lab/provision/workflow"
	"github.com/labctl/lab/templates"
	"github.com/labctl/lab/templates/nodefiles"
)

// goarch maps uname -m to Go's architecture names.
func goarch(machine string) (string, error) {
	switch machine {
	case "x86_64", "amd64":
		return "amd64", nil
	case "aarch64", "arm64":
		return "arm64", nil
	}
	return "", fmt.Errorf("no lab-node build for architecture %s (lab ships amd64 and arm64)", machine)
}

// labNodePath is where the builtin datapath's program goes.
const labNodePath = "/usr/local/bin/lab-node"

// rbacFile is lab-node's RBAC objects (see templates.LabNodeRBACFile),
// which the first control plane applies.
func (r *Run) rbacFile() (templates.File, error) {
	return templates.LabNodeRBACFile(r.Lab, r.node(r.firstControlPlane()))
}

// rbacDiff is a read-only command that succeeds when applying the RBAC
// objects would change nothing; they reach kubectl on its standard input
// from a here-document, since Conn.Run has no input of its own and the
// check writes nothing on the node.
func rbacDiff(rbac templates.File) string {
	return kubectl + "diff -f - >/dev/null 2>&1 <<'EOF'\n" + string(rbac.Content) + "EOF"
}

// labNodeTokenTimeout bounds the wait for kube-controller-manager to fill
// in the token Secret; it does so within a second once it runs.
const labNodeTokenTimeout = 2 * time.Minute

// readLabNodeToken prints the token Secret's token and CA, base64 encoded
// and separated by a space; nothing (or only the space) until they are
// filled in. Its output is secret: it goes to lab's memory only.
const readLabNodeToken = kubectl + `-n kube-system get secret ` + templates.LabNodeTokenSecret + ` -o jsonpath='{.data.token}{" "}{.data.ca\.crt}'`

// labNodeCred is what lab-node's kubeconfig carries besides the server.
type labNodeCred struct {
	token string
	ca    []byte // PEM
}

// labNodeAccess is lab-node's credential as learnt from the first control
// plane, once per run.
type labNodeAccess struct {
	mu      sync.Mutex
	checked bool         // the read-only check ran
	applied bool         // the RBAC objects were applied (successfully or not)
	cred    *labNodeCred // nil while unknown or not current
	err     error        // why applying failed
}

// jwt matches the characters of a JSON Web Token, so that a token can go
// into YAML unquoted and nothing else can.
var jwt = regexp.MustCompile(`^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$`)

// parseLabNodeCred reads readLabNodeToken's output; ok is false while the
// Secret is not filled in. Errors never quote the output.
func parseLabNodeCred(out string) (cred labNodeCred, ok bool, err error) {
	f := strings.Fields(out)
	if len(f) != 2 {
		return labNodeCred{}, false, nil
	}
	token, err := base64.StdEncoding.DecodeString(f[0])
	if err != nil || !jwt.Match(token) {
		return labNodeCred{}, false, fmt.Errorf("secret kube-system/%s holds no token lab-node can use", templates.LabNodeTokenSecret)
	}
	ca, err := base64.StdEncoding.DecodeString(f[1])
	if err != nil {
		return labNodeCred{}, false, fmt.Errorf("secret kube-system/%s: ca.crt is not base64: %w", templates.LabNodeTokenSecret, err)
	}
	if b, _ := pem.Decode(ca); b == nil || b.Type != "CERTIFICATE" {
		return labNodeCred{}, false, fmt.Errorf("secret kube-system/%s: ca.crt holds no PEM certificate", templates.LabNodeTokenSecret)
	}
	return labNodeCred{token: string(token), ca: ca}, true, nil
}

// learnLabNodeCred reads the token Secret on node and registers the token
// with the transport, so that it is masked should it ever reach a log line
// or an error.
func (r *Run) learnLabNodeCred(ctx context.Context, node string) (*labNodeCred, error) {
	out, err := r.run(ctx, node, readLabNodeToken)
	if err != nil {
		return nil, err
	}
	cred, ok, err := parseLabNodeCred(out)
	if err != nil || !ok {
		return nil, err
	}
	r.maskSecrets(ctx, node, cred.token, strings.Fields(out)[0])
	return &cred, nil
}

// currentLabNodeCred returns lab-node's credential when the RBAC objects
// on the cluster are as labNodeRBAC has them and the token is issued, and
// nil otherwise. It only reads (kubectl diff exits 0 when applying would
// change nothing), for the Done check, and asks once per run.
func (r *Run) currentLabNodeCred(ctx context.Context) *labNodeCred {
	a := &r.labNode
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.checked || a.applied {
		return a.cred
	}
	a.checked = true
	first := r.firstControlPlane()
	rbac, err := r.rbacFile()
	if err != nil {
		return nil
	}
	if _, err := r.run(ctx, first, rbacDiff(rbac)); err != nil {
		return nil
	}
	a.cred, _ = r.learnLabNodeCred(ctx, first)
	return a.cred
}

// ensureLabNodeCred applies labNodeRBAC from the first control plane and
// waits for kube-controller-manager to issue the token, once per run.
func (r *Run) ensureLabNodeCred(ctx context.Context) (labNodeCred, error) {
	a := &r.labNode
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.applied {
		a.applied = true
		a.cred, a.err = r.applyLabNodeRBAC(ctx)
	}
	if a.err != nil {
		return labNodeCred{}, a.err
	}
	return *a.cred, nil
}

func (r *Run) applyLabNodeRBAC(ctx context.Context) (*labNodeCred, error) {
	first := r.firstControlPlane()
	rbac, err := r.rbacFile()
	if err != nil {
		return nil, err
	}
	if _, err := r.install(ctx, first, []templates.File{rbac}, kubectl+"apply -f "+shq(rbac.Path)+" >/dev/null"); err != nil {
		return nil, fmt.Errorf("giving lab-node its ServiceAccount: %w", err)
	}
	deadline := time.Now().Add(labNodeTokenTimeout)
	for {
		cred, err := r.learnLabNodeCred(ctx, first)
		if cred != nil {
			return cred, nil
		}
		if time.Now().After(deadline) {
			why := "kube-controller-manager did not fill it in"
			if err != nil {
				why = err.Error()
			}
			return nil, fmt.Errorf("no token in secret kube-system/%s after %s: %s", templates.LabNodeTokenSecret, labNodeTokenTimeout, why)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for lab-node's token: %w", ctx.Err())
		case <-time.After(time.Second):
		}
	}
}

// credential is cred as lab-node's kubeconfig carries it.
func (cred labNodeCred) credential() templates.LabNodeCredential {
	return templates.LabNodeCredential{Token: cred.token, CAData: base64.StdEncoding.EncodeToString(cred.ca)}
}

// labNodeBinary is the lab-node build for node's architecture.
func (r *Run) labNodeBinary(node string) (templates.File, error) {
	f, err := r.Facts(node)
	if err != nil {
		return templates.File{}, err
	}
	arch, err := goarch(f.Arch)
	if err != nil {
		return templates.File{}, err
	}
	data, err := nodebin.LabNode(arch)
	if errors.Is(err, nodebin.ErrNotEmbedded) {
		// A lab built without make: the builds beside it, if any.
		data, err = os.ReadFile(filepath.Join(r.Sources.LabNodeDir, "lab-node-linux-"+arch))
		if err != nil {
			return templates.File{}, fmt.Errorf("lab-node for %s: not embedded in this lab and %w (build lab with make build)", arch, err)
		}
	}
	if err != nil {
		return templates.File{}, err
	}
	return templates.File{Path: labNodePath, Mode: 0o755, Content: data}, nil
}

// labNodeFiles are what the cni phase puts on node: the program, and the
// files nodefiles gives it (its kubeconfig, 0600 as it holds the token, its
// unit, and on the first control plane the RBAC objects).
func (r *Run) labNodeFiles(node string, cred labNodeCred) ([]templates.File, error) {
	bin, err := r.labNodeBinary(node)
	if err != nil {
		return nil, err
	}
	files, err := r.files(node, nodefiles.CNI, func(in *nodefiles.Inputs) { in.LabNode = cred.credential() })
	return append([]templates.File{bin}, files...), err
}

func (r *Run) ciliumFiles(ctx context.Context, node string) ([]templates.File, error) {
	files, err := r.files(node, nodefiles.CNI)
	if err != nil {
		return nil, err
	}
	return r.withHelm(ctx, node, files)
}

// withHelm adds helm for node to files: Sources.Helm, else the release
// downloaded into the cache. An offline lab's helm comes with its Cilium
// or add-on sets instead (see ciliumCNI and Addons).
func (r *Run) withHelm(ctx context.Context, node string, files []templates.File) ([]templates.File, error) {
	f, err := r.Facts(node)
	if err != nil {
		return nil, err
	}
	helm := r.Sources.Helm
	if helm == "" && r.Sources.CacheDir != "" && r.Lab.Kubernetes.Artifacts != labfile.ArtifactsBuild {
		arch, err := goarch(f.Arch)
		if err != nil {
			return nil, err
		}
		if helm, err = fetch.Helm(ctx, fetch.HelmBaseURL, r.Sources.CacheDir, fetch.HelmVersion, arch); err != nil {
			return nil, err
		}
	}
	if helm != "" {
		data, err := os.ReadFile(helm)
		if err != nil {
			return nil, fmt.Errorf("helm: %w", err)
		}
		files = append(files, templates.File{Path: nodeHelm, Mode: 0o755, Content: data})
	}
	return files, nil
}

// CNI installs the pod network: lab-node on every node (builtin), or Cilium
// with `helm upgrade --install` from the first control plane (cilium, see
// ciliumCNI).
func (r *Run) CNI() workflow.Phase {
	switch r.Lab.CNI.Type {
	case labfile.CNIBuiltin:
		return workflow.Phase{
			Name:  nodefiles.CNI,
			Needs: needsFacts,
			Title: "lab-node, the builtin eBPF datapath, on every node",
			Nodes: r.kubeNodes,
			Done: func(ctx context.Context, node string) (bool, error) {
				cred := r.currentLabNodeCred(ctx)
				if cred == nil {
					return false, nil
				}
				files, err := r.labNodeFiles(node, *cred)
				if err != nil {
					return false, err
				}
				return r.inPlace(ctx, node, files, freshCheck(freshCall("lab-node", labNodePath, templates.LabNodeConfPath, templates.LabNodeUnitPath)))
			},
			Run: func(ctx context.Context, node string) error {
				cred, err := r.ensureLabNodeCred(ctx)
				if err != nil {
					return err
				}
				files, err := r.labNodeFiles(node, cred)
				if err != nil {
					return err
				}
				_, err = r.install(ctx, node, files, startLabNodeSh)
				return err
			},
			Describe: func(string) []string {
				return []string{
					"apply ServiceAccount kube-system/lab-node, ClusterRole lab-node (nodes: get, list, watch) bound to it alone, and its token Secret " + templates.LabNodeTokenSecret + " (from " + r.firstControlPlane() + ", once)",
					"write " + templates.LabNodeConfPath + " (0600: the ServiceAccount's token, server https://" + r.Lab.EndpointString() + ")",
					"upload " + labNodePath + " for the node's architecture and " + templates.LabNodeUnitPath,
					"systemctl enable --now lab-node",
				}
			},
		}
	case labfile.CNICilium:
		return r.ciliumCNI()
	}
	return workflow.Phase{Name: "cni", Title: "no pod network (cni: none)", Nodes: func() []string { return nil }}
}
