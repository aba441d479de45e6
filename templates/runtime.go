package templates

import (
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	"github.com/labctl/lab/provision/labfile"
)

// DefaultImageRepository is where kubeadm pulls its images unless the lab
// file says otherwise.
const DefaultImageRepository = "registry.k8s.io"

// containerdData fills containerd's config.toml.
type containerdData struct {
	Header       string
	Socket       string // a path, as containerd's grpc.address wants it
	SandboxImage string
	// Container is true on container nodes (docker provider): the node
	// lacks CAP_SYS_RESOURCE and AppArmor is the host's business.
	Container bool
}

// crictlData fills /etc/crictl.yaml.
type crictlData struct {
	Header   string
	Endpoint string // unix:// URL
}

// runtimeFiles renders the container runtime's files for a node that joins
// the cluster.
func runtimeFiles(l *labfile.Lab, f Facts, h string) ([]File, error) {
	k := l.Kubernetes
	sock, ok := strings.CutPrefix(k.CRISocket, "unix://")
	if !ok || !strings.HasPrefix(sock, "/") {
		return nil, fmt.Errorf("kubernetes.criSocket %q is not a unix:///path URL", k.CRISocket)
	}
	pause, err := PauseVersion(k.Version)
	if err != nil {
		return nil, err
	}
	repo := k.ImageRepository
	if repo == "" {
		repo = DefaultImageRepository
	}
	var files []File
	for _, r := range []struct {
		path string
		mode fs.FileMode
		data any
	}{
		{ContainerdConfigPath, 0o644, containerdData{
			Header:       h,
			Socket:       sock,
			SandboxImage: repo + "/pause:" + pause,
			Container:    f.Container,
		}},
		{CrictlConfigPath, 0o644, crictlData{Header: h, Endpoint: "unix://" + sock}},
	} {
		f, err := render(r.path, r.mode, r.data)
		if err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	return files, nil
}

// PauseVersion is the pause (sandbox) image tag kubeadm of the given
// Kubernetes version uses (its constants.PauseVersion). containerd must run
// the same one, or kubeadm's preflight warns and the kubelet and containerd
// disagree about the sandbox. Releases newer than this table knows keep the
// newest tag it has.
func PauseVersion(k8sVersion string) (string, error) {
	parts := strings.SplitN(strings.TrimPrefix(k8sVersion, "v"), ".", 3)
	if len(parts) < 2 {
		return "", fmt.Errorf("kubernetes.version %q is not a version", k8sVersion)
	}
	minor, err := strconv.Atoi(parts[1])
	if err != nil || parts[0] != "1" {
		return "", fmt.Errorf("kubernetes.version %q is not a 1.x version", k8sVersion)
	}
	if minor <= 33 {
		return "3.10", nil
	}
	return "3.10.1", nil
}
