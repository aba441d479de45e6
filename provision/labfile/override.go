package labfile

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Overrides change a lab file as it loads, before defaults and validation,
// so that what they produce is checked like the file itself: the one lab
// file a study member runs on VirtualBox also runs on container nodes in
// CI, and a CI job pins versions without a copy of the file.
type Overrides struct {
	// Provider runs the lab on another provider than the file names. To
	// docker: the VirtualBox settings (provider.vagrant, the nodes' cpus
	// and memory, the box's ssh user and host-key policy) are dropped and
	// Kubernetes comes from the build source, offline, unless the file
	// says release or build; names, roles and addresses stay.
	Provider string
	// Set are PATH=VALUE assignments of single values, PATH as in error
	// messages: kubernetes.version=v1.34.12, cni.cilium.version=1.18.1,
	// nodes[0].memory=4096.
	Set []string
}

// Empty reports whether o changes nothing.
func (o Overrides) Empty() bool { return o.Provider == "" && len(o.Set) == 0 }

// LoadWith is Load with overrides applied.
func LoadWith(path string, o Overrides) (*Lab, Problems, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read lab file: %w", err)
	}
	lab, warns, err := ParseWith(path, data, o)
	if lab != nil {
		lab.Path = path
	}
	return lab, warns, err
}

// ParseWith is Parse with overrides applied.
func ParseWith(name string, data []byte, o Overrides) (*Lab, Problems, error) {
	if o.Empty() {
		return Parse(name, data)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		// Parse reports what is wrong with the file itself.
		return Parse(name, data)
	}
	root := doc.Content[0]
	if err := o.apply(root); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	// What the overrides left alone keeps its line in messages; the
	// overrides are named so that the user can tell them from the file.
	label := name + " (with " + o.String() + ")"
	lab, at, probs := decodeDoc(label, &doc)
	return finish(label, lab, at, probs)
}

// String names the overrides for messages.
func (o Overrides) String() string {
	var parts []string
	if o.Provider != "" {
		parts = append(parts, "--provider "+o.Provider)
	}
	for _, s := range o.Set {
		parts = append(parts, "--set "+s)
	}
	return strings.Join(parts, " ")
}

func (o Overrides) apply(root *yaml.Node) error {
	switch o.Provider {
	case "":
	case ProviderDocker:
		toDocker(root)
	default:
		return fmt.Errorf("--provider %s: only docker can stand in for the provider a lab file names", o.Provider)
	}
	for _, s := range o.Set {
		path, value, ok := strings.Cut(s, "=")
		if !ok || path == "" {
			return fmt.Errorf("--set %q: write PATH=VALUE, e.g. kubernetes.version=v1.34.12", s)
		}
		if err := set(root, path, value); err != nil {
			return fmt.Errorf("--set %s: %w", s, err)
		}
	}
	return nil
}

// toDocker rewrites a lab file for container nodes.
func toDocker(root *yaml.Node) {
	prov := child(root, "provider", true)
	prov.Kind, prov.Tag, prov.Content = yaml.MappingNode, "!!map", nil
	setScalar(prov, "type", ProviderDocker)
	if ssh := child(root, "ssh", false); ssh != nil {
		remove(ssh, "user")
		remove(ssh, "knownHosts")
	}
	if nodes := child(root, "nodes", false); nodes != nil && nodes.Kind == yaml.SequenceNode {
		for _, n := range nodes.Content {
			remove(n, "cpus")
			remove(n, "memory")
		}
	}
	k := child(root, "kubernetes", true)
	if a := child(k, "artifacts", false); a == nil || a.Value == ArtifactsPackages {
		setScalar(k, "artifacts", ArtifactsBuild)
	}
}

// set assigns value at a dotted path with [i] indices, creating missing
// mapping keys on the way.
func set(root *yaml.Node, path, value string) error {
	cur := root
	parts := strings.Split(path, ".")
	for i, part := range parts {
		key, idx, hasIdx, err := splitIndex(part)
		if err != nil {
			return err
		}
		last := i == len(parts)-1 && !hasIdx
		if cur.Kind != yaml.MappingNode {
			return fmt.Errorf("%s is not a mapping", strings.Join(parts[:i], "."))
		}
		if last {
			setScalar(cur, key, value)
			return nil
		}
		next := child(cur, key, !hasIdx)
		if hasIdx {
			if next == nil || next.Kind != yaml.SequenceNode || idx >= len(next.Content) {
				return fmt.Errorf("%s has no item %d", key, idx)
			}
			next = next.Content[idx]
			if i == len(parts)-1 {
				return fmt.Errorf("%s: name a field of the item", part)
			}
		}
		cur = next
	}
	return nil
}

func splitIndex(part string) (key string, idx int, ok bool, err error) {
	open := strings.IndexByte(part, '[')
	if open < 0 {
		return part, 0, false, nil
	}
	if !strings.HasSuffix(part, "]") {
		return "", 0, false, fmt.Errorf("%q: an index is written [N]", part)
	}
	idx, err = strconv.Atoi(part[open+1 : len(part)-1])
	if err != nil || idx < 0 {
		return "", 0, false, fmt.Errorf("%q: an index is written [N]", part)
	}
	return part[:open], idx, true, nil
}

// child returns the value of key in mapping m, adding an empty mapping
// when create is set and the key is missing.
func child(m *yaml.Node, key string, create bool) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	if !create {
		return nil
	}
	v := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, v)
	return v
}

// setScalar sets key in mapping m to value, typed as YAML would type it
// written plainly (true is a bool, 4096 an int).
func setScalar(m *yaml.Node, key, value string) {
	var typed yaml.Node
	v := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: value}
	if yaml.Unmarshal([]byte(value), &typed) == nil && len(typed.Content) == 1 && typed.Content[0].Kind == yaml.ScalarNode {
		v = typed.Content[0]
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			v.Line, v.Column = m.Content[i+1].Line, m.Content[i+1].Column
			m.Content[i+1] = v
			return
		}
	}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, v)
}

// remove deletes key from mapping m.
func remove(m *yaml.Node, key string) {
	if m == nil || m.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content = append(m.Content[:i], m.Content[i+2:]...)
			return
		}
	}
}
