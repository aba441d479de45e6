package artifacts

import (
	"archive/tar"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// fakeStatus is a dpkg status file with the cases the closure must
// handle: alternatives, version constraints, :any, Pre-Depends, a virtual
// package, a package removed but for its configuration, and
// continuation lines.
const fakeStatus = `Package: tool
Status: install ok installed
Architecture: amd64
Pre-Depends: libc6 (>= 2.34)
Depends: libfoo1 (>= 1.0) | libfoo-alt, awk, perl:any,
 libbar1 [amd64]
Description: a tool
 that spans lines

Package: libc6
Status: install ok installed
Architecture: amd64
Multi-Arch: same

Package: libfoo1
Status: install ok installed
Architecture: amd64
Multi-Arch: same
Depends: libc6

Package: libfoo-alt
Status: install ok installed
Architecture: amd64

Package: mawk
Status: install ok installed
Architecture: amd64
Provides: awk (= 1.3)

Package: perl
Status: install ok installed
Architecture: amd64
Depends: perl-base

Package: perl-base
Status: install ok installed
Architecture: amd64

Package: libbar1
Status: install ok installed
Architecture: amd64
Depends: libgone | libc6

Package: libgone
Status: deinstall ok config-files
Architecture: amd64

Package: heavy
Status: install ok installed
Architecture: amd64
Depends: hugedev

Package: hugedev
Status: install ok installed
Architecture: amd64

Package: broken
Status: install ok installed
Architecture: all
Depends: nothere (>= 1) | alsonothere
`

func TestDpkgClosure(t *testing.T) {
	db, err := readDpkgStatus([]byte(fakeStatus))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := db.pkgs["libgone"]; ok {
		t.Error("a package removed but for its configuration counts as installed")
	}
	got, err := db.closure([]string{"tool", "heavy", "hugedev"}, map[string]bool{"hugedev": true, "libc6": true})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"heavy", "hugedev", "libbar1", "libfoo1", "mawk", "perl", "perl-base", "tool"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("closure with exclusions = %v, want %v", got, want)
	}
	got, err = db.closure([]string{"tool", "heavy"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want = []string{"heavy", "hugedev", "libbar1", "libc6", "libfoo1", "mawk", "perl", "perl-base", "tool"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("closure = %v, want %v", got, want)
	}
	if _, err := db.closure([]string{"broken"}, nil); err == nil || !strings.Contains(err.Error(), "nothere | alsonothere") {
		t.Errorf("closure of a package with an unmet dependency: %v", err)
	}
	if _, err := db.closure([]string{"absent"}, nil); err == nil {
		t.Error("closure of a package that is not installed: no error")
	}
}

func TestParseDepends(t *testing.T) {
	got := parseDepends("a (>= 1:2.0), b:any | c (<< 3) [amd64], d:amd64,\n e")
	want := [][]string{{"a"}, {"b", "c"}, {"d"}, {"e"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseDepends = %v, want %v", got, want)
	}
}

// fakeEntry is one entry of a synthetic root file system.
type fakeEntry struct {
	name, body, link string
	typ              byte
	mode             int64
}

func writeRootfs(t *testing.T, entries []fakeEntry) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "rootfs.tar")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	for _, e := range entries {
		hdr := &tar.Header{Typeflag: e.typ, Name: "./" + e.name, Linkname: e.link, Mode: e.mode, Size: int64(len(e.body))}
		if e.typ == tar.TypeLink {
			hdr.Linkname = "./" + e.link
		}
		if e.typ != tar.TypeReg {
			hdr.Size = 0
		}
		if hdr.Mode == 0 {
			hdr.Mode = 0o644
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPackageUserland gathers two packages out of a merged-/usr root file
// system: their files through /bin → usr/bin, links as links, a hard link
// as a copy, the alternative that leads to one of their files, the
// copyright but no other documentation, and a generated file no package
// lists.
func TestPackageUserland(t *testing.T) {
	dir := func(n string) fakeEntry { return fakeEntry{name: n, typ: tar.TypeDir, mode: 0o755} }
	file := func(n, body string) fakeEntry { return fakeEntry{name: n, body: body, typ: tar.TypeReg, mode: 0o755} }
	link := func(n, target string) fakeEntry { return fakeEntry{name: n, link: target, typ: tar.TypeSymlink} }
	status := `Package: tool
Status: install ok installed
Architecture: amd64
Depends: libfoo1

Package: libfoo1
Status: install ok installed
Architecture: amd64
Multi-Arch: same

Package: other
Status: install ok installed
Architecture: amd64
`
	p := writeRootfs(t, []fakeEntry{
		dir("."), link("bin", "usr/bin"), link("lib", "usr/lib"),
		dir("usr"), dir("usr/bin"), dir("usr/sbin"), dir("usr/lib"), dir("usr/lib/x86_64-linux-gnu"),
		dir("usr/share"), dir("usr/share/doc"), dir("usr/share/doc/tool"), dir("usr/share/man"), dir("usr/share/man/man1"),
		dir("etc"), dir("etc/alternatives"), dir("etc/ssl"), dir("etc/ssl/certs"),
		dir("var"), dir("var/lib"), dir("var/lib/dpkg"), dir("var/lib/dpkg/info"),
		{name: "var/lib/dpkg/status", body: status, typ: tar.TypeReg},
		file("var/lib/dpkg/info/tool.list", "/.\n/bin\n/bin/tool\n/bin/tool-hard\n/usr/sbin/tool-nft\n/usr/share/doc/tool\n/usr/share/doc/tool/copyright\n/usr/share/doc/tool/changelog.gz\n/usr/share/man/man1/tool.1.gz\n/usr/lib/excluded-by-dpkg\n"),
		file("var/lib/dpkg/info/libfoo1:amd64.list", "/.\n/lib/x86_64-linux-gnu\n/lib/x86_64-linux-gnu/libfoo.so.1\n/lib/x86_64-linux-gnu/libfoo.so.1.2\n"),
		file("var/lib/dpkg/info/other.list", "/usr/bin/other\n"),
		file("usr/bin/tool", "TOOL"),
		{name: "usr/bin/tool-hard", typ: tar.TypeLink, link: "usr/bin/tool"},
		file("usr/sbin/tool-nft", "NFT"),
		link("usr/sbin/tool-alt", "/etc/alternatives/tool-alt"),
		link("etc/alternatives/tool-alt", "/usr/sbin/tool-nft"),
		link("usr/sbin/other-alt", "/etc/alternatives/other-alt"),
		link("etc/alternatives/other-alt", "/usr/bin/other"),
		file("usr/share/doc/tool/copyright", "GPL"),
		file("usr/share/doc/tool/changelog.gz", "log"),
		file("usr/share/man/man1/tool.1.gz", "man"),
		link("usr/lib/x86_64-linux-gnu/libfoo.so.1", "libfoo.so.1.2"),
		file("usr/lib/x86_64-linux-gnu/libfoo.so.1.2", "FOO"),
		file("usr/bin/other", "OTHER"),
		file("etc/ssl/certs/ca-certificates.crt", "CERTS"),
	})
	r, err := openRootfs(p)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	u, err := openPackageUserland(r)
	if err != nil {
		t.Fatal(err)
	}
	pkgs, err := u.db.closure([]string{"tool"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := u.addPackages(pkgs); err != nil {
		t.Fatal(err)
	}
	if err := u.addFile("etc/ssl/certs/ca-certificates.crt"); err != nil {
		t.Fatal(err)
	}
	entries, size := u.entries()
	got := map[string]string{}
	for _, e := range entries {
		switch {
		case e.Dir:
			got[e.Name] = "dir"
		case e.Link != "":
			got[e.Name] = "-> " + e.Link
		case e.Section != nil:
			b, err := io.ReadAll(io.NewSectionReader(e.Section, 0, e.Section.Size()))
			if err != nil {
				t.Fatal(err)
			}
			got[e.Name] = string(b)
		}
	}
	want := map[string]string{
		"bin":                                    "-> usr/bin",
		"lib":                                    "-> usr/lib",
		"usr/lib/x86_64-linux-gnu":               "dir",
		"usr/bin/tool":                           "TOOL",
		"usr/bin/tool-hard":                      "TOOL",
		"usr/sbin/tool-nft":                      "NFT",
		"usr/sbin/tool-alt":                      "-> /etc/alternatives/tool-alt",
		"etc/alternatives/tool-alt":              "-> /usr/sbin/tool-nft",
		"usr/share/doc/tool/copyright":           "GPL",
		"usr/lib/x86_64-linux-gnu/libfoo.so.1":   "-> libfoo.so.1.2",
		"usr/lib/x86_64-linux-gnu/libfoo.so.1.2": "FOO",
		"etc/ssl/certs/ca-certificates.crt":      "CERTS",
	}
	if !reflect.DeepEqual(got, want) {
		var names []string
		for n := range got {
			names = append(names, n+" "+got[n])
		}
		sort.Strings(names)
		t.Errorf("userland:\n%s", strings.Join(names, "\n"))
	}
	if size != int64(len("TOOLTOOLNFTGPLFOOCERTS")) {
		t.Errorf("size %d", size)
	}
	if s := string(u.status(pkgs)); !strings.Contains(s, "Package: libfoo1") || strings.Contains(s, "Package: other") {
		t.Errorf("status file:\n%s", s)
	}
	// The entries make a layer.
	if err := writeLayer(io.Discard, entries); err != nil {
		t.Fatal(err)
	}
}

func TestSkippedPath(t *testing.T) {
	for name, skip := range map[string]bool{
		"usr/share/doc":                        true,
		"usr/share/doc/bash":                   true,
		"usr/share/doc/bash/copyright":         false,
		"usr/share/doc/bash/README.gz":         true,
		"usr/share/doc/bash/x/copyright":       true,
		"usr/share/man/man1/ls.1.gz":           true,
		"usr/share/man":                        true,
		"usr/share/locale/de/LC_MESSAGES/x.mo": true,
		"usr/share/mantis":                     false,
		"usr/bin/ls":                           false,
	} {
		if got := skippedPath(name); got != skip {
			t.Errorf("skippedPath(%s) = %v, want %v", name, got, skip)
		}
	}
}
