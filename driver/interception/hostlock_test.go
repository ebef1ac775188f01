package interception

import (
	"strings"
	"testing"
)

func TestHostLock_OneAllocationAtATime(t *testing.T) {
	l := newHostLock(t.TempDir())
	if err := l.acquire("alloc-a"); err != nil {
		t.Fatalf("first acquire: %v", err)
	}
	if owner, _ := l.owner(); owner != "alloc-a" {
		t.Fatalf("after the first acquire the owner is %q", owner)
	}
	if err := l.acquire("alloc-a"); err != nil {
		t.Fatalf("the owner re-acquiring (a sidecar restart) must succeed: %v", err)
	}
	err := l.acquire("alloc-b")
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
	if err := l.acquire("alloc-b"); err != nil {
		t.Fatalf("after release: %v", err)
	}
	if owner, _ := l.owner(); owner != "alloc-b" {
		t.Fatalf("after release and a new acquire the owner is %q", owner)
	}
}
