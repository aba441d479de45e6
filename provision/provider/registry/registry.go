// Package registry is the one place that knows every provider type: it
// maps a lab file's provider.type to the provider's traits and constructor.
// Code outside the provider packages asks it instead of switching on the
// type, so a new provider is added here and nowhere else.
package registry

import (
	"fmt"

	"github.com/labctl/lab/provision/labfile"
	"github.com/labctl/lab/provision/provider"
	"github.com/labctl/lab/provision/provider/docker"
	"github.com/labctl/lab/provision/provider/static"
	"github.com/labctl/lab/provision/provider/vagrant"
)

// Config is what lab knows when it makes a lab's provider. Each
// constructor takes what applies to it.
type Config struct {
	// StateDir is the lab's state directory, where a provider keeps what
	// it made for the lab (keys, machine records).
	StateDir string
	// Vagrantfile is lab's Vagrantfile for vagrant labs (default: the
	// vagrant provider's own lookup).
	Vagrantfile string
}

// Entry is one provider type.
type Entry struct {
	// Type is the lab file's provider.type.
	Type   string
	Traits provider.Traits
	// New makes the provider for one lab.
	New func(Config) (provider.Provider, error)
}

// Entries returns every provider type, in no particular order. It builds
// the list on each call: there is nothing to register at run time.
func Entries() []Entry {
	return []Entry{
		{
			Type:   labfile.ProviderDocker,
			Traits: docker.Traits(),
			New: func(c Config) (provider.Provider, error) {
				return docker.New(docker.Options{StateDir: c.StateDir})
			},
		},
		{
			Type:   labfile.ProviderVagrant,
			Traits: vagrant.Traits(),
			New: func(c Config) (provider.Provider, error) {
				return vagrant.New(vagrant.Options{StateDir: c.StateDir, Vagrantfile: c.Vagrantfile})
			},
		},
		{
			Type:   labfile.ProviderStatic,
			Traits: static.Traits(),
			New: func(Config) (provider.Provider, error) {
				return static.Provider{}, nil
			},
		},
	}
}

// Lookup returns the entry for a provider type.
func Lookup(typ string) (Entry, error) {
	for _, e := range Entries() {
		if e.Type == typ {
			return e, nil
		}
	}
	return Entry{}, fmt.Errorf("unknown provider %q", typ)
}

// New makes the provider lab l names.
func New(l *labfile.Lab, c Config) (provider.Provider, error) {
	e, err := Lookup(l.Provider.Type)
	if err != nil {
		return nil, fmt.Errorf("lab %s: %w", l.Metadata.Name, err)
	}
	p, err := e.New(c)
	if err != nil {
		return nil, fmt.Errorf("lab %s: %w", l.Metadata.Name, err)
	}
	return p, nil
}

// Traits are the traits of lab l's provider. A validated lab always names
// a known provider; for one that does not (a lab file being checked, or
// rendered by a test) they are the existing hosts' traits, which assume
// the least: that lab creates nothing and reads no host keys out of band.
func Traits(l *labfile.Lab) provider.Traits {
	if e, err := Lookup(l.Provider.Type); err == nil {
		return e.Traits
	}
	return static.Traits()
}
