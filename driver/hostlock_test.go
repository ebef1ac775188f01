package driver

import (
	"strings"
	"testing"
)

func TestHostLock_OneAllocationAtATime(t *testing.T) {
	l := newHostLock(t.TempDir())
	fresh, err := l.acquire("alloc-a")
	if err != nil || !fresh {
		t.Fatalf("first acquire: fresh=%v err=%v", fresh, err)
	}
	if fresh, err := l.acquire("alloc-a"); err != nil || fresh {
		t.Fatalf("the owner re-acquiring (a sidecar restart) must succeed without being fresh: %v %v", fresh, err)
	}
	_, err = l.acquire("alloc-b")
	if err == nil || !strings.Contains(err.Error(), "allocation alloc-a already meshes this host") {
		t.Fatalf("second allocation: got %v, want an error naming the owner", err)
	}
	if err := l.release("alloc-b"); err != nil {
		t.Fatal(err)
	}
	if owner, _ := l.owner(); owner != "alloc-a" {
		t.Fatalf("a non-owner's release must not free the lock; owner is %q", owner)
	}
	if err := l.release("alloc-a"); err != nil {
		t.Fatal(err)
	}
	if fresh, err := l.acquire("alloc-b"); err != nil || !fresh {
		t.Fatalf("after release: %v %v", fresh, err)
	}
}
