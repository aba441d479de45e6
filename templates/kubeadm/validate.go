package kubeadm

import (
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apimachinery/pkg/util/version"
	kubeadmapi "k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm"
	"k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm/scheme"
	"k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm/validation"
	"k8s.io/kubernetes/cmd/kubeadm/app/componentconfigs"
	kubeadmconstants "k8s.io/kubernetes/cmd/kubeadm/app/constants"
	kubeadmutil "k8s.io/kubernetes/cmd/kubeadm/app/util"
	"k8s.io/kubernetes/cmd/kubeadm/app/util/config/strict"
)

// The checks below follow what `kubeadm config validate` does with a file
// (cmd/kubeadm/app/util/config: ValidateConfig), minus the parts that need
// the host (CRI detection, interface lookup) because every value they
// would fill in is already explicit here: split the documents, decode each
// one strictly, decode through kubeadm's scheme into the internal types
// (defaulting + conversion), apply the defaults kubeadm applies after
// decoding, and run kubeadm's validation.

// validateInit judges an init configuration stream.
func validateInit(data []byte) error {
	docs, err := splitStrict(data)
	if err != nil {
		return err
	}
	initDoc, ok := findKind(docs, kubeadmconstants.InitConfigurationKind)
	if !ok {
		return errors.New("no InitConfiguration document")
	}
	clusterDoc, ok := findKind(docs, kubeadmconstants.ClusterConfigurationKind)
	if !ok {
		return errors.New("no ClusterConfiguration document")
	}
	cfg := &kubeadmapi.InitConfiguration{}
	if err := runtime.DecodeInto(scheme.Codecs.UniversalDecoder(), initDoc, cfg); err != nil {
		return err
	}
	cluster := &kubeadmapi.ClusterConfiguration{}
	if err := runtime.DecodeInto(scheme.Codecs.UniversalDecoder(), clusterDoc, cluster); err != nil {
		return err
	}
	cfg.ClusterConfiguration = *cluster
	if err := componentconfigs.FetchFromDocumentMap(&cfg.ClusterConfiguration, docs); err != nil {
		return err
	}
	if cfg.NodeRegistration.Taints == nil {
		cfg.NodeRegistration.Taints = append(cfg.NodeRegistration.Taints, kubeadmconstants.ControlPlaneTaint)
	}
	componentconfigs.Default(&cfg.ClusterConfiguration, &cfg.LocalAPIEndpoint, &cfg.NodeRegistration)
	if err := checkVersion(cfg.KubernetesVersion); err != nil {
		return err
	}
	if err := checkEndpoint(cfg.ControlPlaneEndpoint); err != nil {
		return err
	}
	return fieldErrors(validation.ValidateInitConfiguration(cfg))
}

// validateJoin judges a join configuration stream.
func validateJoin(data []byte) error {
	docs, err := splitStrict(data)
	if err != nil {
		return err
	}
	joinDoc, ok := findKind(docs, kubeadmconstants.JoinConfigurationKind)
	if !ok {
		return errors.New("no JoinConfiguration document")
	}
	cfg := &kubeadmapi.JoinConfiguration{}
	if err := runtime.DecodeInto(scheme.Codecs.UniversalDecoder(), joinDoc, cfg); err != nil {
		return err
	}
	if cfg.ControlPlane != nil && cfg.NodeRegistration.Taints == nil {
		cfg.NodeRegistration.Taints = append(cfg.NodeRegistration.Taints, kubeadmconstants.ControlPlaneTaint)
	}
	return fieldErrors(validation.ValidateJoinConfiguration(cfg))
}

// splitStrict splits a YAML stream into its documents by kind and rejects
// unknown or duplicate fields, as `kubeadm config validate` does.
func splitStrict(data []byte) (kubeadmapi.DocumentMap, error) {
	docs, err := kubeadmutil.SplitConfigDocuments(data)
	if err != nil {
		return nil, err
	}
	gvks := make([]schema.GroupVersionKind, 0, len(docs))
	for gvk := range docs {
		gvks = append(gvks, gvk)
	}
	sort.Slice(gvks, func(i, j int) bool { return gvks[i].String() < gvks[j].String() })
	schemes := []*runtime.Scheme{scheme.Scheme, componentconfigs.Scheme}
	for _, gvk := range gvks {
		if !scheme.Scheme.IsGroupRegistered(gvk.Group) && !componentconfigs.Scheme.IsGroupRegistered(gvk.Group) {
			return nil, fmt.Errorf("unknown configuration document %s", gvk)
		}
		if err := strict.VerifyUnmarshalStrict(schemes, gvk, docs[gvk]); err != nil {
			return nil, err
		}
	}
	return docs, nil
}

func findKind(docs kubeadmapi.DocumentMap, kind string) ([]byte, bool) {
	for gvk, doc := range docs {
		if gvk.Kind == kind {
			return doc, true
		}
	}
	return nil, false
}

// fieldErrors turns kubeadm's field errors into one error listing them all,
// without the values of secret fields.
func fieldErrors(errs field.ErrorList) error {
	if len(errs) == 0 {
		return nil
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		if isSecretField(e.Field) {
			e.BadValue = field.OmitValueType{}
		}
		msgs[i] = e.Error()
	}
	return errors.New(strings.Join(msgs, "; "))
}

func isSecretField(path string) bool {
	for _, s := range []string{"token", "certificateKey", "tlsBootstrapToken"} {
		if strings.Contains(path, s) {
			return true
		}
	}
	return false
}

// KubeadmVersion is the release of the kubeadm code linked into lab, which
// judges every configuration: go.mod's k8s.io/kubernetes requirement (a test
// keeps the two equal). kubeadm itself reads its version from linker flags
// that lab's build does not set, so it is spelled out here.
const KubeadmVersion = "v1.34.12"

// checkVersion applies kubeadm's version skew rule: it deploys control
// planes of its own minor version and the one before.
func checkVersion(v string) error {
	ver, err := version.ParseSemantic(v)
	if err != nil {
		return fmt.Errorf("couldn't parse Kubernetes version %q: %w", v, err)
	}
	kv := version.MustParseSemantic(KubeadmVersion)
	minVersion := version.MajorMinor(kv.Major(), kv.Minor()-1)
	if ver.LessThan(minVersion) {
		return fmt.Errorf("this version of kubeadm (%s) only supports deploying clusters with the control plane version >= %s. Current version: %s",
			KubeadmVersion, minVersion, v)
	}
	return nil
}

// checkEndpoint insists on an explicit port: kubeadm would otherwise pick
// the local bind port, which is not where the load balancer listens.
func checkEndpoint(ep string) error {
	if ep == "" {
		return nil
	}
	_, port, err := net.SplitHostPort(ep)
	if err != nil {
		return fmt.Errorf("controlPlaneEndpoint %q: %w", ep, err)
	}
	if _, err := strconv.Atoi(port); err != nil {
		return fmt.Errorf("controlPlaneEndpoint %q: port is not a number", ep)
	}
	return nil
}
