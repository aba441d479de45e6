package state

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestPermissionsAndAtomicWrite(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	d, err := Open(root, "x")
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(d.Path()); fi.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v, want 0700", fi.Mode().Perm())
	}
	if err := d.WriteFile("a", []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := d.WriteFile("a", []byte("two")); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(d.File("a")); fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v, want 0600", fi.Mode().Perm())
	}
	if b, _ := d.ReadFile("a"); string(b) != "two" {
		t.Errorf("content %q", b)
	}
	ents, _ := os.ReadDir(d.Path())
	if len(ents) != 1 {
		t.Errorf("temporary files left: %v", ents)
	}
	if _, err := Open(root, "../evil"); err == nil {
		t.Error("a lab name with a slash was accepted")
	}
}

func TestSecretsAreGeneratedOnceAndPrivate(t *testing.T) {
	d, _ := Open(t.TempDir(), "lab")
	s1, err := d.Secrets()
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[a-z0-9]{6}\.[a-z0-9]{16}$`).MatchString(s1.BootstrapToken) {
		t.Errorf("token %q has the wrong shape", s1.BootstrapToken)
	}
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(s1.CertificateKey) {
		t.Errorf("certificate key has the wrong shape")
	}
	s2, _ := d.Secrets()
	if s1 != s2 {
		t.Error("secrets changed between runs")
	}
	if fi, _ := os.Stat(d.File("secrets.json")); fi.Mode().Perm() != 0o600 {
		t.Errorf("secrets mode %v", fi.Mode().Perm())
	}
	other, _ := NewSecrets()
	if other == s1 {
		t.Error("two labs got the same secrets")
	}
}

func TestJournal(t *testing.T) {
	d, _ := Open(t.TempDir(), "lab")
	now := time.Now()
	_ = d.Record(Entry{Phase: "connect", Node: "a", At: now})
	_ = d.Record(Entry{Phase: "os", Node: "a", At: now.Add(time.Second)})
	_ = d.Record(Entry{Phase: "connect", Node: "a", At: now.Add(2 * time.Second)})
	j, err := d.Journal()
	if err != nil || len(j) != 2 || j[1].Phase != "connect" {
		t.Fatalf("journal %v %v", j, err)
	}
	_ = d.ClearJournal()
	if j, _ := d.Journal(); len(j) != 0 {
		t.Errorf("journal not cleared: %v", j)
	}
}

// TestLock checks that a second holder is refused while a live process
// holds the lock, and that a lock left by a killed process is taken over.
func TestLock(t *testing.T) {
	d, _ := Open(t.TempDir(), "lab")
	l, stale, err := d.Lock("up")
	if err != nil || stale != "" {
		t.Fatalf("first lock: %v %q", err, stale)
	}
	if _, _, err := d.Lock("reset"); !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "lab up") {
		t.Fatalf("second lock: %v", err)
	}
	if err := l.Unlock(); err != nil {
		t.Fatal(err)
	}

	// A child process takes the lock and is killed while holding it.
	child := exec.Command(os.Args[0], "-test.run=TestLockHelper")
	child.Env = append(os.Environ(), "LAB_LOCK_HELPER_DIR="+filepath.Dir(d.Path()))
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = child.Process.Kill(); _ = child.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "locked") {
		t.Fatalf("helper: %q %v", line, err)
	}
	if _, _, err := d.Lock("up"); !errors.Is(err, ErrLocked) {
		t.Fatalf("took a lock held by a live process: %v", err)
	}
	_ = child.Process.Kill()
	_ = child.Wait()
	l, stale, err = d.Lock("up")
	if err != nil {
		t.Fatalf("lock after holder died: %v", err)
	}
	defer l.Unlock()
	if !strings.Contains(stale, fmt.Sprintf("pid %d ", child.Process.Pid)) {
		t.Errorf("stale holder %q not reported", stale)
	}
}

// TestLockHelper is the child process of TestLock: it takes the lock and
// holds it until killed.
func TestLockHelper(t *testing.T) {
	root := os.Getenv("LAB_LOCK_HELPER_DIR")
	if root == "" {
		t.Skip("helper process for TestLock")
	}
	d, err := Open(root, "lab")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.Lock("up"); err != nil {
		t.Fatal(err)
	}
	fmt.Println("locked")
	time.Sleep(time.Hour) // killed by the parent test
}
