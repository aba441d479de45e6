package filelock

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestTryLockExcludesOtherHolders(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	a, err := Open(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if ok, err := TryLock(b); err != nil || ok {
		t.Fatalf("TryLock while held = %v, %v; want false, nil", ok, err)
	}
	if err := Unlock(a); err != nil {
		t.Fatal(err)
	}
	if ok, err := TryLock(b); err != nil || !ok {
		t.Fatalf("TryLock after Unlock = %v, %v; want true, nil", ok, err)
	}
	a.Close()
}

func TestCloseReleasesAndLockWaits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	a, err := Open(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		b, err := Open(path, 0o600)
		if err == nil {
			b.Close()
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("Open returned (%v) while another holder had the lock", err)
	case <-time.After(100 * time.Millisecond):
	}
	a.Close()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Open still waits after the holder closed the file")
	}
}

func TestLockKeepsContentReadable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	a, err := Open(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := a.WriteAt([]byte("pid 1\n"), 0); err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(path); err != nil || string(data) != "pid 1\n" {
		t.Fatalf("reading a locked file = %q, %v", data, err)
	}
}
