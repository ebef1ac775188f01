package netfilter

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// One writer at a time per namespace; a waiter gives up with ctx, naming the lock; a lock file removed under a
// waiter (a cleanup) is not the one it ends up holding. flock conflicts between two opens in one process as
// between two processes, so this needs no second process (the CLI's race test has those).
func TestNamespaceLock_OneHolderAtATime(t *testing.T) {
	n := Namespaces{LockDir: t.TempDir()}
	first, err := n.lock(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := n.lock(short, ""); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), first.path) {
		t.Fatalf("a second holder: got %v, want a timeout naming %s", err, first.path)
	}
	got := make(chan *nsLock, 1)
	go func() {
		l, err := n.lock(t.Context(), "")
		if err != nil {
			t.Error(err)
		}
		got <- l
	}()
	first.remove()
	first.unlock()
	second := <-got
	defer second.unlock()
	var held, now os.FileInfo
	if held, err = second.f.Stat(); err != nil {
		t.Fatal(err)
	}
	if now, err = os.Stat(second.path); err != nil || !os.SameFile(held, now) {
		t.Fatalf("the waiter holds a removed file (%v)", err)
	}
}

func TestNamespaceLock_NamedByNamespaceIdentity(t *testing.T) {
	dir := t.TempDir()
	viaSelf, err := lockPath(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	viaPid, err := lockPath(dir, "/proc/"+strconv.Itoa(os.Getpid())+"/ns/net")
	if err != nil || viaPid != viaSelf {
		t.Fatalf("two paths to one namespace: %s and %s (%v)", viaSelf, viaPid, err)
	}
	if _, err := lockPath(dir, "/nonexistent/netns"); !errors.Is(err, ErrNamespaceGone) {
		t.Fatalf("a missing namespace: %v", err)
	}
}

// A namespace that went before its cleanup leaves its lock file; the next cleanup's prune removes it, and
// never the file of a namespace that is still there, nor one that is held. Any file stands in for a
// namespace here: the lock is named by what the path stats to.
func TestNamespaceLock_FilesOfGoneNamespacesArePruned(t *testing.T) {
	n := Namespaces{LockDir: t.TempDir()}
	gone, live, held := filepath.Join(t.TempDir(), "gone"), filepath.Join(t.TempDir(), "live"), filepath.Join(t.TempDir(), "held")
	paths := map[string]string{}
	for _, ns := range []string{gone, live, held} {
		if err := os.WriteFile(ns, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		l, err := n.lock(t.Context(), ns)
		if err != nil {
			t.Fatal(err)
		}
		paths[ns] = l.path
		if ns == held {
			defer l.unlock()
			continue
		}
		l.unlock()
	}
	if err := os.Remove(gone); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(held); err != nil {
		t.Fatal(err)
	}
	n.pruneGone()
	for ns, want := range map[string]bool{gone: false, live: true, held: true} {
		if _, err := os.Stat(paths[ns]); (err == nil) != want {
			t.Errorf("%s: lock file present %v, want %v", filepath.Base(ns), err == nil, want)
		}
	}
}
