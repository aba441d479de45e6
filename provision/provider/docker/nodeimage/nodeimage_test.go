package nodeimage

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRewriteDropsHostKeysAndAddsLabFiles(t *testing.T) {
	var base bytes.Buffer
	tw := tar.NewWriter(&base)
	add := func(name string, typ byte, body string) {
		hdr := &tar.Header{Name: name, Typeflag: typ, Mode: 0o644, Size: int64(len(body))}
		if typ == tar.TypeDir {
			hdr.Size = 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
	}
	add("./", tar.TypeDir, "")
	add("./etc/", tar.TypeDir, "")
	add("./etc/ssh/", tar.TypeDir, "")
	add("./etc/ssh/sshd_config", tar.TypeReg, "PermitRootLogin prohibit-password\n")
	add("./etc/ssh/ssh_host_ed25519_key", tar.TypeReg, "SECRET")
	add("./etc/ssh/ssh_host_ed25519_key.pub", tar.TypeReg, "ssh-ed25519 AAAA")
	add("./etc/machine-id", tar.TypeReg, "0123456789abcdef0123456789abcdef\n")
	tw.Close()

	overlay, err := overlayEntries()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := rewrite(&out, &base, overlay); err != nil {
		t.Fatal(err)
	}

	files := map[string]string{}
	links := map[string]string{}
	count := map[string]int{}
	tr := tar.NewReader(&out)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := cleanName(hdr.Name)
		count[name]++
		body, _ := io.ReadAll(tr)
		switch hdr.Typeflag {
		case tar.TypeReg:
			files[name] = string(body)
		case tar.TypeSymlink:
			links[name] = hdr.Linkname
		}
	}
	for name, n := range count {
		if n > 1 {
			t.Errorf("%s appears %d times", name, n)
		}
	}
	for name := range files {
		if strings.HasPrefix(name, "etc/ssh/ssh_host_") {
			t.Errorf("host key %s reached the image", name)
		}
	}
	if files["etc/ssh/sshd_config"] == "" {
		t.Error("unrelated base file was lost")
	}
	if id, ok := files["etc/machine-id"]; !ok || id != "" {
		t.Errorf("machine-id = %q (present %v); want empty so each node gets its own", id, ok)
	}
	if !strings.Contains(files["etc/systemd/system/lab-ssh-hostkeys.service"], "ssh-keygen -A") {
		t.Error("host key unit missing")
	}
	if links["etc/systemd/system/ssh.service.wants/lab-ssh-hostkeys.service"] == "" {
		t.Error("host key unit not enabled")
	}
	// Parents of added files exist as directories.
	for _, d := range []string{"etc", "etc/ssh", "etc/systemd", "etc/systemd/system", "etc/systemd/system/ssh.service.wants"} {
		if count[d] != 1 {
			t.Errorf("directory %s appears %d times", d, count[d])
		}
	}
}

func TestImageHashFollowsInputs(t *testing.T) {
	overlay, err := overlayEntries()
	if err != nil {
		t.Fatal(err)
	}
	h1, h2 := imageHash(overlay), imageHash(overlay)
	if h1 != h2 {
		t.Fatal("hash is not stable")
	}
	changed := append([]entry(nil), overlay...)
	changed[0].data = append([]byte("x"), changed[0].data...)
	if imageHash(changed) == h1 {
		t.Error("changing a file does not change the hash")
	}
}

func TestDetectMirror(t *testing.T) {
	for _, tc := range []struct {
		name, file, body, want string
	}{
		{"deb822", "etc/apt/sources.list.d/debian.sources", "Types: deb\n# comment\nURIs: http://mirror.example/debian/\nSuites: bookworm\n\nTypes: deb\nURIs: http://mirror.example/debian-security\n", "http://mirror.example/debian"},
		{"one-line", "etc/apt/sources.list", "# x\ndeb [signed-by=/k.gpg] http://ftp.example/debian bookworm main\n", "http://ftp.example/debian"},
		{"security only", "etc/apt/sources.list", "deb http://security.debian.org/debian-security bookworm-security main\n", DefaultMirror},
		{"none", "", "", DefaultMirror},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			if tc.file != "" {
				p := filepath.Join(root, tc.file)
				os.MkdirAll(filepath.Dir(p), 0o755)
				if err := os.WriteFile(p, []byte(tc.body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if got := DetectMirror(root); got != tc.want {
				t.Errorf("DetectMirror = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestUnescapeMount(t *testing.T) {
	if got := unescapeMount(`/tmp/a\040b/proc`); got != "/tmp/a b/proc" {
		t.Errorf("got %q", got)
	}
	if got := unescapeMount(`/x\\y`); got != `/x\\y` {
		t.Errorf("got %q", got)
	}
}
