package registry

import (
	"strings"
	"testing"
	"time"

	"github.com/labctl/lab/provision/labfile"
	"github.com/labctl/lab/provision/provider"
)

// TestEveryTypeHasOneEntry: every type a lab file may name can be made,
// and the registry names no other.
func TestEveryTypeHasOneEntry(t *testing.T) {
	valid := map[string]bool{}
	for _, typ := range labfile.ProviderTypes() {
		valid[typ] = true
		e, err := Lookup(typ)
		if err != nil {
			t.Errorf("Lookup(%q): %v", typ, err)
			continue
		}
		if e.New == nil {
			t.Errorf("%s: no constructor", typ)
		}
		tr := e.Traits
		if tr.Nodes == 0 || tr.NodeInterface == "" || tr.ConnectTimeout <= 0 || tr.Deletes == "" {
			t.Errorf("%s: traits not filled in: %+v", typ, tr)
		}
	}
	seen := map[string]bool{}
	for _, e := range Entries() {
		if !valid[e.Type] {
			t.Errorf("entry %q is not a provider type labfile accepts", e.Type)
		}
		if seen[e.Type] {
			t.Errorf("two entries for %q", e.Type)
		}
		seen[e.Type] = true
	}
	if _, err := Lookup("libvirt"); err == nil {
		t.Error("Lookup of an unknown type succeeded")
	}
}

func TestTraits(t *testing.T) {
	for _, tc := range []struct {
		typ  string
		want provider.Traits
	}{
		{labfile.ProviderDocker, provider.Traits{
			Nodes: provider.Containers, NodeInterface: "eth0", ConnectTimeout: 30 * time.Second,
			HostKeysOutOfBand: true, CreatesNodes: true, BundleRootFS: true,
		}},
		{labfile.ProviderVagrant, provider.Traits{
			Nodes: provider.VMs, NodeInterface: "eth1", ConnectTimeout: 2 * time.Minute,
			CreatesNodes: true,
		}},
		{labfile.ProviderStatic, provider.Traits{
			Nodes: provider.Hosts, NodeInterface: "eth0", ConnectTimeout: 2 * time.Minute,
		}},
	} {
		l := &labfile.Lab{Provider: labfile.Provider{Type: tc.typ}}
		got := Traits(l)
		got.Deletes = "" // prose, checked for presence above
		if got != tc.want {
			t.Errorf("Traits(%s) = %+v, want %+v", tc.typ, got, tc.want)
		}
		if got.Container() != (tc.typ == labfile.ProviderDocker) {
			t.Errorf("Traits(%s).Container() = %v", tc.typ, got.Container())
		}
	}
}

// An unknown type gets the traits that assume the least.
func TestTraitsOfUnknownType(t *testing.T) {
	got := Traits(&labfile.Lab{Provider: labfile.Provider{Type: "libvirt"}})
	if got.CreatesNodes || got.HostKeysOutOfBand || got.BundleRootFS || got.Container() {
		t.Errorf("Traits(libvirt) = %+v, want the existing hosts' traits", got)
	}
}

func TestNew(t *testing.T) {
	dir := t.TempDir()
	for _, typ := range labfile.ProviderTypes() {
		l := &labfile.Lab{Metadata: labfile.Metadata{Name: "t"}, Provider: labfile.Provider{Type: typ}}
		p, err := New(l, Config{StateDir: dir})
		if err != nil {
			// docker.New needs a docker client binary on PATH.
			t.Logf("New(%s): %v", typ, err)
			continue
		}
		if p == nil {
			t.Errorf("New(%s) returned no provider", typ)
		}
	}
	l := &labfile.Lab{Metadata: labfile.Metadata{Name: "t"}, Provider: labfile.Provider{Type: "libvirt"}}
	if _, err := New(l, Config{StateDir: dir}); err == nil {
		t.Error("New made a provider of an unknown type")
	}
}

// TestPinnedNeedsHostKeysOutOfBand: the lab file accepts the pinned
// known-hosts policy exactly for the providers whose traits read host
// keys out of band (labfile cannot import the registry, so it keeps its
// own rule; this keeps the two in step).
func TestPinnedNeedsHostKeysOutOfBand(t *testing.T) {
	for _, typ := range labfile.ProviderTypes() {
		src := `apiVersion: lab/v1alpha1
kind: Lab
metadata: {name: pin}
provider: {type: ` + typ + `}
networks: [{name: lab, cidr: 192.168.56.0/24}]
kubernetes: {version: v1.34.12}
cni: {type: builtin}
ssh: {knownHosts: pinned, keyFiles: [~/.ssh/id_ed25519]}
nodes:
  - {name: cp1, roles: [control-plane], addresses: {lab: 192.168.56.11}}
`
		_, _, err := labfile.Parse("pin.yaml", []byte(src))
		refused := err != nil && strings.Contains(err.Error(), "ssh.knownHosts")
		if err != nil && !refused {
			t.Fatalf("%s: the test lab is invalid for another reason: %v", typ, err)
		}
		if oob := Traits(&labfile.Lab{Provider: labfile.Provider{Type: typ}}).HostKeysOutOfBand; refused == oob {
			t.Errorf("%s: HostKeysOutOfBand is %v, and labfile refuses pinned: %v (%v)", typ, oob, refused, err)
		}
	}
}
