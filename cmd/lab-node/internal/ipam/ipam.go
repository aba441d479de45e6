// Package ipam hands out pod addresses from a node's pod CIDR.
//
// The state is a directory with one small file per address in use, named
// after the address and holding its owner (container ID and interface). An
// flock on a lock file serialises the CNI plugin processes a runtime may run
// at the same time. Allocation is idempotent per owner, so a CNI ADD that is
// retried after a crash gets the address it had.
package ipam

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/labctl/lab/internal/atomicfile"
	"github.com/labctl/lab/internal/filelock"
)

// Owner is who holds an address: the CNI (container ID, interface) pair,
// plus the pod's name for humans.
type Owner struct {
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifName"`
	Pod         string `json:"pod,omitempty"` // namespace/name
}

func (o Owner) same(p Owner) bool { return o.ContainerID == p.ContainerID && o.IfName == p.IfName }

// Allocator allocates from one prefix, with its state in one directory.
type Allocator struct {
	dir    string
	prefix netip.Prefix
}

// ErrFull is returned when every address of the prefix is in use.
var ErrFull = errors.New("no free address")

// New returns an allocator for prefix keeping its state in dir (created
// 0700 when missing).
func New(dir string, prefix netip.Prefix) (*Allocator, error) {
	if !prefix.Addr().Is4() || prefix.Bits() > 30 {
		return nil, fmt.Errorf("ipam: pod CIDR %s: want an IPv4 prefix of /30 or larger", prefix)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("ipam: %w", err)
	}
	return &Allocator{dir: dir, prefix: prefix.Masked()}, nil
}

// lock takes the directory's exclusive lock; call the returned func to
// release it.
func (a *Allocator) lock() (func(), error) {
	f, err := filelock.Open(filepath.Join(a.dir, "lock"), 0o600)
	if err != nil {
		return nil, fmt.Errorf("ipam: %w", err)
	}
	return func() { f.Close() }, nil
}

// Allocate returns owner's address, choosing a free one if it has none.
// Addresses are handed out round-robin so a just-freed address is not
// reused at once (a stale peer could still be talking to it).
func (a *Allocator) Allocate(owner Owner) (netip.Addr, error) {
	unlock, err := a.lock()
	if err != nil {
		return netip.Addr{}, err
	}
	defer unlock()
	used, err := a.list()
	if err != nil {
		return netip.Addr{}, err
	}
	for ip, o := range used {
		if o.same(owner) {
			return ip, nil
		}
	}
	first := a.prefix.Addr().Next() // skip the network address
	start := first
	if b, err := os.ReadFile(filepath.Join(a.dir, "last")); err == nil {
		if last, err := netip.ParseAddr(strings.TrimSpace(string(b))); err == nil && a.usable(last.Next()) {
			start = last.Next()
		}
	}
	for ip := start; ; {
		if _, taken := used[ip]; !taken {
			if err := a.write(ip, owner); err != nil {
				return netip.Addr{}, err
			}
			return ip, writeFile(filepath.Join(a.dir, "last"), []byte(ip.String()))
		}
		ip = ip.Next()
		if !a.usable(ip) {
			ip = first
		}
		if ip == start {
			return netip.Addr{}, fmt.Errorf("ipam: pod CIDR %s: %w", a.prefix, ErrFull)
		}
	}
}

// usable: inside the prefix, neither network nor broadcast address.
func (a *Allocator) usable(ip netip.Addr) bool {
	return a.prefix.Contains(ip) && ip != a.prefix.Addr() && a.prefix.Contains(ip.Next())
}

// Lookup returns owner's address, if it has one.
func (a *Allocator) Lookup(owner Owner) (netip.Addr, bool, error) {
	unlock, err := a.lock()
	if err != nil {
		return netip.Addr{}, false, err
	}
	defer unlock()
	used, err := a.list()
	if err != nil {
		return netip.Addr{}, false, err
	}
	for ip, o := range used {
		if o.same(owner) {
			return ip, true, nil
		}
	}
	return netip.Addr{}, false, nil
}

// Release frees owner's address; releasing nothing is not an error.
func (a *Allocator) Release(owner Owner) error {
	unlock, err := a.lock()
	if err != nil {
		return err
	}
	defer unlock()
	used, err := a.list()
	if err != nil {
		return err
	}
	for ip, o := range used {
		if o.same(owner) {
			if err := os.Remove(filepath.Join(a.dir, ip.String())); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("ipam: release %s: %w", ip, err)
			}
		}
	}
	return nil
}

// List returns every address in use and its owner.
func (a *Allocator) List() (map[netip.Addr]Owner, error) {
	unlock, err := a.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	return a.list()
}

func (a *Allocator) list() (map[netip.Addr]Owner, error) {
	return readOwners(a.dir, a.prefix.Contains)
}

// Owners reads the addresses in use from a state directory without taking
// its lock, for reports (lab-node stats): a record is always whole.
func Owners(dir string) (map[netip.Addr]Owner, error) {
	return readOwners(dir, func(netip.Addr) bool { return true })
}

func readOwners(dir string, keep func(netip.Addr) bool) (map[netip.Addr]Owner, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("ipam: %w", err)
	}
	used := make(map[netip.Addr]Owner)
	for _, e := range entries {
		ip, err := netip.ParseAddr(e.Name())
		if err != nil || !keep(ip) {
			continue // lock, last, temporary files, other prefixes
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("ipam: %w", err)
		}
		var o Owner
		if err := json.Unmarshal(b, &o); err != nil {
			return nil, fmt.Errorf("ipam: %s: %w", filepath.Join(dir, e.Name()), err)
		}
		used[ip] = o
	}
	return used, nil
}

func (a *Allocator) write(ip netip.Addr, o Owner) error {
	b, err := json.Marshal(o)
	if err != nil {
		return err
	}
	return writeFile(filepath.Join(a.dir, ip.String()), b)
}

// writeFile writes a 0600 record atomically, so a crash never leaves a
// half-written one.
func writeFile(path string, b []byte) error {
	if err := atomicfile.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("ipam: %w", err)
	}
	return nil
}
