package artifacts

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
)

// iptablesCommands are the names kube-proxy runs; Debian's
// xtables-nft-multi answers to each (the nftables backend, as on the
// nodes, whose iptables alternative Debian sets to nft).
var iptablesCommands = []string{
	"iptables", "iptables-save", "iptables-restore",
	"ip6tables", "ip6tables-save", "ip6tables-restore",
}

// rootfs is an index of a root file system tarball: every entry's header
// and where its content starts, so that files can be read in any order.
type rootfs struct {
	f       *os.File
	entries map[string]*rootfsEntry
}

type rootfsEntry struct {
	hdr    *tar.Header
	offset int64
}

// openRootfs indexes the tarball at p.
func openRootfs(p string) (*rootfs, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	r := &rootfs{f: f, entries: map[string]*rootfsEntry{}}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		// archive/tar reads headers block by block without reading
		// ahead, so the file's position is where the content starts.
		off, err := f.Seek(0, io.SeekCurrent)
		if err != nil {
			f.Close()
			return nil, err
		}
		name := strings.TrimPrefix(path.Clean("/"+hdr.Name), "/")
		if name != "" {
			r.entries[name] = &rootfsEntry{hdr: hdr, offset: off}
		}
	}
	return r, nil
}

func (r *rootfs) Close() error { return r.f.Close() }

// resolve follows symbolic links through every element of name and returns
// the real path and the links passed on the way.
func (r *rootfs) resolve(name string) (string, []string, error) {
	var links []string
	parts := strings.Split(strings.TrimPrefix(path.Clean("/"+name), "/"), "/")
	cur := ""
	for hops := 0; len(parts) > 0; {
		next := path.Join(cur, parts[0])
		parts = parts[1:]
		e, ok := r.entries[next]
		if !ok {
			return "", nil, fmt.Errorf("%s: %w", name, fs.ErrNotExist)
		}
		if e.hdr.Typeflag != tar.TypeSymlink {
			cur = next
			continue
		}
		if hops++; hops > 40 {
			return "", nil, fmt.Errorf("%s: too many symbolic links", name)
		}
		links = append(links, next)
		target := e.hdr.Linkname
		if !path.IsAbs(target) {
			target = path.Join("/", cur, target)
		}
		rest := strings.Split(strings.TrimPrefix(path.Clean(target), "/"), "/")
		if rest[0] == "" {
			rest = nil
		}
		parts = append(rest, parts...)
		cur = ""
	}
	return cur, links, nil
}

func (r *rootfs) read(name string) ([]byte, error) {
	e, ok := r.entries[name]
	if !ok || e.hdr.Typeflag != tar.TypeReg {
		return nil, fmt.Errorf("%s: not a regular file", name)
	}
	data := make([]byte, e.hdr.Size)
	if _, err := r.f.ReadAt(data, e.offset); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return data, nil
}

// gather collects files with every link leading to them and, for ELF
// programs and libraries, the dynamic loader and every library they need,
// found in the library directories of arch.
type gather struct {
	r       *rootfs
	machine elf.Machine
	libDirs []string
	out     map[string]layerEntry
}

func (g *gather) add(name string) error {
	real, links, err := g.r.resolve(name)
	if err != nil {
		return err
	}
	for _, l := range links {
		if _, ok := g.out[l]; !ok {
			g.out[l] = layerEntry{Name: l, Link: g.r.entries[l].hdr.Linkname}
		}
	}
	if _, ok := g.out[real]; ok {
		return nil
	}
	e := g.r.entries[real]
	if e.hdr.Typeflag == tar.TypeDir {
		return fmt.Errorf("%s is a directory", name)
	}
	data, err := g.r.read(real)
	if err != nil {
		return err
	}
	g.out[real] = layerEntry{Name: real, Mode: fs.FileMode(e.hdr.Mode).Perm(), Data: data}
	if len(data) < 4 || string(data[:4]) != elf.ELFMAG {
		return nil
	}
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("%s: %w", real, err)
	}
	defer f.Close()
	if f.Machine != g.machine {
		return fmt.Errorf("%s is for %s, the nodes are %s", real, f.Machine, g.machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b, err := io.ReadAll(p.Open())
			if err != nil {
				return fmt.Errorf("%s: %w", real, err)
			}
			if err := g.add(strings.TrimRight(string(b), "\x00")); err != nil {
				return fmt.Errorf("%s: loader: %w", real, err)
			}
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		return fmt.Errorf("%s: %w", real, err)
	}
	for _, lib := range libs {
		found := false
		for _, d := range g.libDirs {
			if _, _, err := g.r.resolve(path.Join(d, lib)); err == nil {
				if err := g.add(path.Join(d, lib)); err != nil {
					return err
				}
				found = true
				break
			}
		}
		if !found {
			return fmt.Errorf("%s needs %s, which is not in %v", real, lib, g.libDirs)
		}
	}
	return nil
}

// iptables takes Debian's iptables (nftables backend), its extensions and
// every library they load from the Debian root file system, for the
// kube-proxy image. The upstream kube-proxy image is built the same way,
// from Debian's iptables packages.
func (b *builder) iptables() ([]layerEntry, error) {
	machine, triplet, err := elfArch(b.o.Arch)
	if err != nil {
		return nil, err
	}
	r, err := openRootfs(b.o.Userland)
	if err != nil {
		return nil, fmt.Errorf("kube-proxy's iptables: %w", err)
	}
	defer r.Close()
	g := &gather{
		r:       r,
		machine: machine,
		libDirs: []string{"lib/" + triplet, "usr/lib/" + triplet, "lib", "usr/lib"},
		out:     map[string]layerEntry{},
	}
	multi := "usr/sbin/xtables-nft-multi"
	if err := g.add(multi); err != nil {
		return nil, fmt.Errorf("kube-proxy's iptables (is iptables in the node image?): %w", err)
	}
	extDir, _, err := r.resolve("usr/lib/" + triplet + "/xtables")
	if err != nil {
		return nil, fmt.Errorf("kube-proxy's iptables: extensions: %w", err)
	}
	var exts []string
	for name, e := range r.entries {
		// Some extensions are links to others (libipt_DNAT.so →
		// libxt_DNAT.so): iptables looks for both names.
		if path.Dir(name) == extDir && (e.hdr.Typeflag == tar.TypeReg || e.hdr.Typeflag == tar.TypeSymlink) && strings.HasSuffix(name, ".so") {
			exts = append(exts, name)
		}
	}
	if len(exts) == 0 {
		return nil, fmt.Errorf("kube-proxy's iptables: no extensions in %s", extDir)
	}
	sort.Strings(exts)
	for _, name := range exts {
		if err := g.add(name); err != nil {
			return nil, fmt.Errorf("kube-proxy's iptables: %w", err)
		}
	}
	// Protocol and service names iptables resolves, when the root file
	// system has them.
	for _, name := range []string{"etc/protocols", "etc/services", "etc/ethertypes"} {
		if err := g.add(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("kube-proxy's iptables: %w", err)
		}
	}
	for _, cmd := range iptablesCommands {
		name := "usr/sbin/" + cmd
		g.out[name] = layerEntry{Name: name, Link: "xtables-nft-multi"}
	}
	out := make([]layerEntry, 0, len(g.out))
	for _, e := range g.out {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// elfArch maps a Go architecture to its ELF machine and Debian's
// multiarch triplet.
func elfArch(arch string) (elf.Machine, string, error) {
	switch arch {
	case "amd64":
		return elf.EM_X86_64, "x86_64-linux-gnu", nil
	case "arm64":
		return elf.EM_AARCH64, "aarch64-linux-gnu", nil
	}
	return 0, "", fmt.Errorf("no Debian userland for architecture %s", arch)
}
