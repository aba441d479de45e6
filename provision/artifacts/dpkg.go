package artifacts

import (
	"archive/tar"
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// dpkgPackage is one package of a root file system's dpkg database.
type dpkgPackage struct {
	Name     string
	Arch     string
	Provides []string // virtual package names, versions dropped
	// Depends holds Depends and Pre-Depends: each element is one
	// dependency, satisfied by any of its alternatives.
	Depends [][]string
	// stanza is the package's entry of the status file, as it was.
	stanza string
}

// dpkgDB is the installed packages of a root file system.
type dpkgDB struct {
	pkgs      map[string]*dpkgPackage
	providers map[string][]string // virtual name → installed packages, sorted
}

// readDpkgStatus parses /var/lib/dpkg/status, keeping installed packages
// only (not those removed with their configuration files left behind).
func readDpkgStatus(data []byte) (*dpkgDB, error) {
	db := &dpkgDB{pkgs: map[string]*dpkgPackage{}, providers: map[string][]string{}}
	for _, stanza := range strings.Split(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n\n") {
		if strings.TrimSpace(stanza) == "" {
			continue
		}
		fields := parseStanza(stanza)
		name := fields["package"]
		if name == "" {
			return nil, fmt.Errorf("dpkg status: a stanza without Package: %.60q", stanza)
		}
		if !strings.HasSuffix(fields["status"], " installed") {
			continue
		}
		p := &dpkgPackage{Name: name, Arch: fields["architecture"], stanza: strings.Trim(stanza, "\n")}
		for _, dep := range []string{fields["pre-depends"], fields["depends"]} {
			p.Depends = append(p.Depends, parseDepends(dep)...)
		}
		for _, alts := range parseDepends(fields["provides"]) {
			p.Provides = append(p.Provides, alts...)
		}
		// With multiarch, one name may be installed for two
		// architectures; the first one is as good for what lab takes.
		if _, ok := db.pkgs[name]; ok {
			continue
		}
		db.pkgs[name] = p
		for _, v := range p.Provides {
			db.providers[v] = append(db.providers[v], name)
		}
	}
	for _, ps := range db.providers {
		sort.Strings(ps)
	}
	return db, nil
}

// parseStanza returns a stanza's fields by lower-case name, continuation
// lines joined.
func parseStanza(stanza string) map[string]string {
	fields := map[string]string{}
	var last string
	for _, line := range strings.Split(stanza, "\n") {
		if line == "" {
			continue
		}
		if (line[0] == ' ' || line[0] == '\t') && last != "" {
			fields[last] += "\n" + strings.TrimSpace(line)
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		last = strings.ToLower(strings.TrimSpace(k))
		fields[last] = strings.TrimSpace(v)
	}
	return fields
}

// parseDepends parses a Depends-style field ("a (>= 1) | b:any, c") into
// its dependencies, each a list of alternative package names with
// versions, architecture qualifiers and restrictions dropped: what is
// installed already satisfied dpkg, so lab only needs the names.
func parseDepends(field string) [][]string {
	var out [][]string
	for _, dep := range strings.Split(field, ",") {
		var alts []string
		for _, alt := range strings.Split(dep, "|") {
			alt = strings.TrimSpace(alt)
			if i := strings.IndexAny(alt, " \t\n(["); i >= 0 {
				alt = alt[:i]
			}
			if i := strings.IndexByte(alt, ':'); i >= 0 {
				alt = alt[:i] // :any, :native, :amd64
			}
			if alt != "" {
				alts = append(alts, alt)
			}
		}
		if len(alts) > 0 {
			out = append(out, alts)
		}
	}
	return out
}

// satisfy returns the installed package that satisfies one dependency: the
// first alternative installed by that name, else the first one an
// installed package provides.
func (db *dpkgDB) satisfy(alts []string) (string, bool) {
	for _, a := range alts {
		if _, ok := db.pkgs[a]; ok {
			return a, true
		}
	}
	for _, a := range alts {
		if ps := db.providers[a]; len(ps) > 0 {
			return ps[0], true
		}
	}
	return "", false
}

// closure returns the named packages and every package they need through
// Depends and Pre-Depends, sorted. A dependency satisfied by a package in
// exclude is left out, with what it would need (see agentUserlandExclude);
// the named packages themselves are always taken.
func (db *dpkgDB) closure(names []string, exclude map[string]bool) ([]string, error) {
	seen := map[string]bool{}
	queue := append([]string(nil), names...)
	for _, n := range names {
		if _, ok := db.pkgs[n]; !ok {
			return nil, fmt.Errorf("package %s is not installed in the root file system", n)
		}
	}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		if seen[n] {
			continue
		}
		seen[n] = true
		for _, alts := range db.pkgs[n].Depends {
			dep, ok := db.satisfy(alts)
			if !ok {
				return nil, fmt.Errorf("package %s depends on %s, which is not installed in the root file system", n, strings.Join(alts, " | "))
			}
			if !seen[dep] && !exclude[dep] {
				queue = append(queue, dep)
			}
		}
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

// packageUserland gathers whole Debian packages out of a root file system
// tarball into layer entries.
type packageUserland struct {
	r   *rootfs
	db  *dpkgDB
	out map[string]layerEntry
}

// openPackageUserland reads the dpkg database of the root file system r.
func openPackageUserland(r *rootfs) (*packageUserland, error) {
	status, err := r.read("var/lib/dpkg/status")
	if err != nil {
		return nil, fmt.Errorf("dpkg database: %w (is this a Debian root file system?)", err)
	}
	db, err := readDpkgStatus(status)
	if err != nil {
		return nil, err
	}
	return &packageUserland{r: r, db: db, out: map[string]layerEntry{}}, nil
}

// skippedPath reports whether a packaged file stays out of an image:
// documentation, manual pages and translations, which nothing in a
// container reads. Each package's copyright file stays.
func skippedPath(name string) bool {
	for _, dir := range []string{"usr/share/man/", "usr/share/info/", "usr/share/locale/", "usr/share/lintian/", "usr/share/bug/", "usr/share/doc-base/"} {
		if strings.HasPrefix(name+"/", dir) {
			return true
		}
	}
	if rest, ok := strings.CutPrefix(name, "usr/share/doc/"); ok {
		return path.Base(rest) != "copyright" || strings.Count(rest, "/") != 1
	}
	return name == "usr/share/doc"
}

// addPackages puts every file, link and directory of the packages into the
// layer, and the alternatives (/etc/alternatives) that lead to their
// files, as installed in the root file system.
func (u *packageUserland) addPackages(pkgs []string) error {
	for _, n := range pkgs {
		p := u.db.pkgs[n]
		list, err := u.r.read("var/lib/dpkg/info/" + n + ".list")
		if err != nil && p.Arch != "" {
			list, err = u.r.read("var/lib/dpkg/info/" + n + ":" + p.Arch + ".list")
		}
		if err != nil {
			return fmt.Errorf("package %s: file list: %w", n, err)
		}
		sc := bufio.NewScanner(bytes.NewReader(list))
		sc.Buffer(make([]byte, 64*1024), 1<<20)
		for sc.Scan() {
			if err := u.addPath(sc.Text()); err != nil {
				return fmt.Errorf("package %s: %w", n, err)
			}
		}
		if err := sc.Err(); err != nil {
			return fmt.Errorf("package %s: file list: %w", n, err)
		}
	}
	return u.addAlternatives()
}

// addPath adds one path of a package's file list. Its directories are
// resolved through the root file system's links (with merged /usr,
// /bin/bash is usr/bin/bash) and those links go into the layer too; the
// path itself is taken as it is, a link as a link. Paths the root file
// system lacks (excluded by dpkg's path filters, or diverted) are skipped.
func (u *packageUserland) addPath(p string) error {
	p = strings.TrimPrefix(path.Clean("/"+p), "/")
	if p == "" || p == "." {
		return nil
	}
	name := p
	if parent := path.Dir(p); parent != "." {
		dir, links, err := u.r.resolve(parent)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		} else if err != nil {
			return err
		}
		u.addLinks(links)
		name = path.Join(dir, path.Base(p))
	}
	if skippedPath(name) {
		return nil
	}
	if _, ok := u.out[name]; ok {
		return nil
	}
	e, ok := u.r.entries[name]
	if !ok {
		return nil
	}
	return u.addEntry(name, e)
}

// addEntry adds the root file system's entry name as it is.
func (u *packageUserland) addEntry(name string, e *rootfsEntry) error {
	mode := fs.FileMode(e.hdr.Mode).Perm()
	if e.hdr.Mode&0o1000 != 0 {
		mode |= fs.ModeSticky
	}
	switch e.hdr.Typeflag {
	case tar.TypeDir:
		u.out[name] = layerEntry{Name: name, Mode: mode, Dir: true}
	case tar.TypeSymlink:
		u.out[name] = layerEntry{Name: name, Link: e.hdr.Linkname}
	case tar.TypeReg:
		u.out[name] = layerEntry{Name: name, Mode: mode, Section: io.NewSectionReader(u.r.f, e.offset, e.hdr.Size)}
	case tar.TypeLink:
		// A hard link: the layer gets a copy of the file it names.
		target := strings.TrimPrefix(path.Clean("/"+e.hdr.Linkname), "/")
		t, ok := u.r.entries[target]
		if !ok || t.hdr.Typeflag != tar.TypeReg {
			return fmt.Errorf("%s: hard link to %s, which is not a regular file", name, e.hdr.Linkname)
		}
		u.out[name] = layerEntry{Name: name, Mode: mode, Section: io.NewSectionReader(u.r.f, t.offset, t.hdr.Size)}
	default:
		// Device nodes and the like belong to the container runtime.
	}
	return nil
}

// addAlternatives adds, for each link into /etc/alternatives that ends at
// a file already in the layer, the link and the alternative: `iptables`
// is no package's file but update-alternatives' link to iptables-nft.
func (u *packageUserland) addAlternatives() error {
	var names []string
	for name, e := range u.r.entries {
		if e.hdr.Typeflag != tar.TypeSymlink {
			continue
		}
		target := e.hdr.Linkname
		if !path.IsAbs(target) {
			target = path.Join("/", path.Dir(name), target)
		}
		if strings.HasPrefix(path.Clean(target), "/etc/alternatives/") {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		if skippedPath(name) {
			continue
		}
		real, links, err := u.r.resolve(name)
		if err != nil {
			continue // a dangling alternative
		}
		if _, ok := u.out[real]; !ok {
			continue
		}
		u.addLinks(append(links, name))
	}
	return nil
}

// addLinks adds links of the root file system as they are.
func (u *packageUserland) addLinks(links []string) {
	for _, l := range links {
		if _, ok := u.out[l]; !ok {
			u.out[l] = layerEntry{Name: l, Link: u.r.entries[l].hdr.Linkname}
		}
	}
}

// addFile adds a file of the root file system that no package lists
// (generated at install: /etc/ssl/certs/ca-certificates.crt, /etc/passwd),
// following links to it.
func (u *packageUserland) addFile(name string) error {
	real, links, err := u.r.resolve(name)
	if err != nil {
		return err
	}
	u.addLinks(links)
	if _, ok := u.out[real]; ok {
		return nil
	}
	return u.addEntry(real, u.r.entries[real])
}

// status is a dpkg status file that lists exactly pkgs, so that tools
// that read an image's dpkg database (scanners, dpkg -l) see what it holds.
func (u *packageUserland) status(pkgs []string) []byte {
	var b bytes.Buffer
	for _, n := range pkgs {
		b.WriteString(u.db.pkgs[n].stanza)
		b.WriteString("\n\n")
	}
	return b.Bytes()
}

// entries returns the layer entries gathered so far, sorted by name, and
// the size of their content.
func (u *packageUserland) entries() ([]layerEntry, int64) {
	out := make([]layerEntry, 0, len(u.out))
	var size int64
	for _, e := range u.out {
		out = append(out, e)
		if e.Section != nil {
			size += e.Section.Size()
		}
		size += int64(len(e.Data))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, size
}
