package provision

import (
	"fmt"

	"gopkg.in/yaml.v3"
)

// kubeconfig is the part of a kubeconfig file lab reads and writes; the
// entries are kept as generic maps so that fields lab does not know (exec
// plugins, extensions) survive a merge untouched.
type kubeconfig struct {
	APIVersion     string           `yaml:"apiVersion"`
	Kind           string           `yaml:"kind"`
	Clusters       []map[string]any `yaml:"clusters"`
	Users          []map[string]any `yaml:"users"`
	Contexts       []map[string]any `yaml:"contexts"`
	CurrentContext string           `yaml:"current-context"`
	Preferences    map[string]any   `yaml:"preferences,omitempty"`
	Rest           map[string]any   `yaml:",inline"`
}

// MergeKubeconfig merges the lab's admin kubeconfig into an existing one
// (which may be empty) as cluster, user and context all called name,
// replacing entries of that name and leaving every other entry alone. With
// use, the new context becomes the current one.
func MergeKubeconfig(existing, lab []byte, name string, use bool) ([]byte, error) {
	var dst, src kubeconfig
	if len(existing) > 0 {
		if err := yaml.Unmarshal(existing, &dst); err != nil {
			return nil, fmt.Errorf("existing kubeconfig: %w", err)
		}
	}
	if err := yaml.Unmarshal(lab, &src); err != nil {
		return nil, fmt.Errorf("lab kubeconfig: %w", err)
	}
	if len(src.Clusters) == 0 || len(src.Users) == 0 {
		return nil, fmt.Errorf("lab kubeconfig has no cluster or user")
	}
	dst.APIVersion, dst.Kind = "v1", "Config"
	cluster, user := src.Clusters[0], src.Users[0]
	cluster["name"], user["name"] = name, name
	dst.Clusters = replaceNamed(dst.Clusters, cluster)
	dst.Users = replaceNamed(dst.Users, user)
	dst.Contexts = replaceNamed(dst.Contexts, map[string]any{
		"name":    name,
		"context": map[string]any{"cluster": name, "user": name},
	})
	if use || dst.CurrentContext == "" {
		dst.CurrentContext = name
	}
	return yaml.Marshal(&dst)
}

func replaceNamed(list []map[string]any, entry map[string]any) []map[string]any {
	for i, e := range list {
		if e["name"] == entry["name"] {
			list[i] = entry
			return list
		}
	}
	return append(list, entry)
}
