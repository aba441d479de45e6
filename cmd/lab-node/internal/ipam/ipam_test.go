package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
)

func TestAllocateIsIdempotentAndSkipsReserved(t *testing.T) {
	a, err := New(t.TempDir(), netip.MustParsePrefix("10.244.1.0/30"))
	if err != nil {
		t.Fatal(err)
	}
	c1 := Owner{ContainerID: "c1", IfName: "eth0"}
	ip1, err := a.Allocate(c1)
	if err != nil || ip1 != netip.MustParseAddr("10.244.1.1") {
		t.Fatalf("first = %s, %v; want 10.244.1.1", ip1, err)
	}
	again, err := a.Allocate(c1)
	if err != nil || again != ip1 {
		t.Fatalf("same owner again = %s, %v; want %s", again, err, ip1)
	}
	ip2, err := a.Allocate(Owner{ContainerID: "c2", IfName: "eth0"})
	if err != nil || ip2 != netip.MustParseAddr("10.244.1.2") {
		t.Fatalf("second = %s, %v; want 10.244.1.2", ip2, err)
	}
	// .0 is the network and .3 the broadcast address: the /30 is full.
	if _, err := a.Allocate(Owner{ContainerID: "c3", IfName: "eth0"}); !errors.Is(err, ErrFull) {
		t.Fatalf("third: %v, want ErrFull", err)
	}
	if err := a.Release(c1); err != nil {
		t.Fatal(err)
	}
	if err := a.Release(c1); err != nil {
		t.Fatalf("release twice: %v", err)
	}
	ip3, err := a.Allocate(Owner{ContainerID: "c3", IfName: "eth0"})
	if err != nil || ip3 != ip1 {
		t.Fatalf("after release = %s, %v; want %s", ip3, err, ip1)
	}
}

func TestRoundRobin(t *testing.T) {
	a, err := New(t.TempDir(), netip.MustParsePrefix("10.244.1.0/24"))
	if err != nil {
		t.Fatal(err)
	}
	c1 := Owner{ContainerID: "c1", IfName: "eth0"}
	ip1, _ := a.Allocate(c1)
	if err := a.Release(c1); err != nil {
		t.Fatal(err)
	}
	ip2, _ := a.Allocate(Owner{ContainerID: "c2", IfName: "eth0"})
	if ip2 == ip1 {
		t.Fatalf("freed address %s reused at once", ip1)
	}
}

// Concurrent plugin processes are serialised by the flock; goroutines with
// separate Allocators on one directory exercise the same path.
func TestConcurrentAllocationsAreDistinct(t *testing.T) {
	dir := t.TempDir()
	prefix := netip.MustParsePrefix("10.244.1.0/24")
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		got = map[netip.Addr]string{}
	)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := New(dir, prefix)
			if err != nil {
				t.Error(err)
				return
			}
			id := fmt.Sprintf("c%d", i)
			ip, err := a.Allocate(Owner{ContainerID: id, IfName: "eth0"})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if other, dup := got[ip]; dup {
				t.Errorf("%s given to %s and %s", ip, other, id)
			}
			got[ip] = id
		}()
	}
	wg.Wait()
	a, _ := New(dir, prefix)
	used, err := a.List()
	if err != nil || len(used) != 50 {
		t.Fatalf("List: %d addresses, %v; want 50", len(used), err)
	}
}
