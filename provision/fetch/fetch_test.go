package fetch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/labctl/lab/internal/tooltest"
)

const labText = "apiVersion: lab/v1alpha1\nkind: Lab\n"

func serve(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/lab.yaml", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(labText)) })
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func TestHTTPWithChecksum(t *testing.T) {
	s := serve(t)
	dst := filepath.Join(t.TempDir(), "lab.yaml")
	if err := File(context.Background(), s.URL+"/lab.yaml?checksum=sha256:"+sum(labText), dst); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(dst); string(b) != labText {
		t.Errorf("got %q", b)
	}
}

func TestChecksumMismatchWritesNothing(t *testing.T) {
	s := serve(t)
	dst := filepath.Join(t.TempDir(), "lab.yaml")
	err := File(context.Background(), s.URL+"/lab.yaml?checksum=sha256:"+sum("something else"), dst)
	if err == nil || !strings.Contains(err.Error(), "checksum mismatch: expected "+sum("something else")+", got "+sum(labText)) {
		t.Fatalf("want a checksum error, got %v", err)
	}
	if _, statErr := os.Stat(dst); !os.IsNotExist(statErr) {
		t.Error("a file that failed its checksum was left at the destination")
	}
	if ents, _ := os.ReadDir(filepath.Dir(dst)); len(ents) != 0 {
		t.Errorf("leftovers: %v", ents)
	}
}

func TestCredentialsAreRedacted(t *testing.T) {
	err := File(context.Background(), "https://user:hunter2@127.0.0.1:1/lab.yaml", filepath.Join(t.TempDir(), "x"))
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error leaks the password or is nil: %v", err)
	}
}

// TestGitFile fetches a lab file out of a real git repository with the real
// git client.
func TestGitFile(t *testing.T) {
	tooltest.Path(t, "git", "apt-get install git")
	repo := t.TempDir()
	run := func(args ...string) {
		cmd := exec.Command("git", args...)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	run("init", "-q", "-b", "main")
	if err := os.MkdirAll(filepath.Join(repo, "labs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, "labs", "ci.yaml"), []byte(labText), 0o644); err != nil {
		t.Fatal(err)
	}
	run("add", ".")
	run("commit", "-q", "-m", "lab")
	run("tag", "v1")
	dst := filepath.Join(t.TempDir(), "ci.yaml")
	if err := File(context.Background(), "git::file://"+repo+"//labs/ci.yaml?ref=v1", dst); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(dst); string(b) != labText {
		t.Errorf("got %q", b)
	}
	err := File(context.Background(), "git::file://"+repo+"//labs/missing.yaml", dst)
	if err == nil || !strings.Contains(err.Error(), "no labs/missing.yaml in the repository") {
		t.Errorf("missing file: %v", err)
	}
}

func TestSplitGit(t *testing.T) {
	for src, want := range map[string][2]string{
		"git::https://github.com/a/b.git//labs/ci.yaml?ref=v1": {"git::https://github.com/a/b.git?ref=v1", "labs/ci.yaml"},
		"git::file:///tmp/r//lab.yaml":                         {"git::file:///tmp/r", "lab.yaml"},
	} {
		repo, path, ok := splitGit(src)
		if !ok || repo != want[0] || path != want[1] {
			t.Errorf("%s: %q %q %v", src, repo, path, ok)
		}
	}
	if _, _, ok := splitGit("git::https://github.com/a/b.git"); ok {
		t.Error("a repository without a path was split")
	}
}
