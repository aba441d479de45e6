package fetch

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
)

func helmArchive(t *testing.T, body string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	tw := tar.NewWriter(zw)
	for name, data := range map[string]string{"linux-amd64/helm": body, "linux-amd64/LICENSE": "x"} {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		_, _ = tw.Write([]byte(data))
	}
	tw.Close()
	zw.Close()
	return b.Bytes()
}

// TestHelmIsVerifiedAndCached serves a release the way get.helm.sh does (the
// archive and a .sha256sum file beside it) and checks that lab verifies it,
// extracts the binary, and downloads it only once.
func TestHelmIsVerifiedAndCached(t *testing.T) {
	archive := helmArchive(t, "#!/bin/sh\necho helm\n")
	sum := sha256.Sum256(archive)
	var gets atomic.Int32
	bad := false
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/helm-v3.19.0-linux-amd64.tar.gz":
			if r.Method == http.MethodGet {
				gets.Add(1)
			}
			if bad {
				_, _ = w.Write(helmArchive(t, "tampered"))
				return
			}
			_, _ = w.Write(archive)
		case "/helm-v3.19.0-linux-amd64.tar.gz.sha256sum":
			fmt.Fprintf(w, "%x  helm-v3.19.0-linux-amd64.tar.gz\n", sum)
		default:
			http.NotFound(w, r)
		}
	}))
	defer s.Close()
	cache := t.TempDir()
	bin, err := Helm(context.Background(), s.URL, cache, "v3.19.0", "amd64")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(bin); !strings.Contains(string(b), "echo helm") {
		t.Errorf("extracted %q", b)
	}
	if _, err := Helm(context.Background(), s.URL, cache, "v3.19.0", "amd64"); err != nil || gets.Load() != 1 {
		t.Errorf("second call downloaded again (%d gets, %v)", gets.Load(), err)
	}

	bad = true
	_, err = Helm(context.Background(), s.URL, t.TempDir(), "v3.19.0", "amd64")
	if err == nil || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Fatalf("a tampered archive was accepted: %v", err)
	}
}
