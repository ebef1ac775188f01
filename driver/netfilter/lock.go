package netfilter

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/istio-sidecar/istio-sidecar/driver/rules"
)

// The namespace lock
//
// Our chain names are Istio's, so a namespace holds one owner's ruleset, and Apply's read, decide and restore
// is one step only if nobody else writes in between: two writers that both read an empty namespace both
// restore, and leave two owners and each built-in chain's jump twice. Every writer (the driver's starts,
// repairs and releases, and the operator CLI's apply and cleanup) therefore holds an flock on a file named
// after the namespace's identity (the nsfs device and inode, the same through any path to it) under the
// plugin's state_dir. An flock dies with its process, so a crash never leaves it held.
//
// The file is removed after a cleanup, under the lock: whoever waited on the removed file finds, once it holds
// it, that the path no longer names the file it locked, and starts again on the new one. A file holds the
// namespace's path, so that the files of namespaces that went before their cleanup (Nomad tore the group's
// network down first) are found and removed by the next cleanup.

// lockPoll is how often a held lock is tried again. flock cannot wait on a context; the lock is held for one
// apply or cleanup, tens of milliseconds.
const lockPoll = 10 * time.Millisecond

// Namespaces is the interception of the network namespaces on this host, each change made under the
// namespace's lock in LockDir (the plugin's state_dir/netns).
type Namespaces struct{ LockDir string }

// LockDir is where the plugin keeps the namespace locks, given its state_dir.
func LockDir(stateDir string) string { return filepath.Join(stateDir, "netns") }

// Apply is Apply under the namespace's lock.
func (n Namespaces) Apply(ctx context.Context, nsPath string, rs rules.Ruleset) ([]Report, error) {
	l, err := n.lock(ctx, nsPath)
	if err != nil {
		return nil, err
	}
	defer l.unlock()
	return Apply(ctx, nsPath, rs)
}

// Repair verifies rs and, if the namespace drifted from it, applies it again, in one hold of the lock, so that
// nothing changes between what Verify saw and what Apply puts back. drifted says the rules differed.
func (n Namespaces) Repair(ctx context.Context, nsPath string, rs rules.Ruleset) (drifted bool, restored []Report, err error) {
	l, err := n.lock(ctx, nsPath)
	if err != nil {
		return false, nil, err
	}
	defer l.unlock()
	if err := Verify(ctx, nsPath, rs); err == nil || !errors.Is(err, ErrDrift) {
		return false, nil, err
	}
	restored, err = Apply(ctx, nsPath, rs)
	return true, restored, err
}

// Cleanup is Cleanup under the namespace's lock; allocID "" removes every owner's rules.
func (n Namespaces) Cleanup(ctx context.Context, nsPath, allocID string) (CleanupResult, error) {
	defer n.pruneGone()
	l, err := n.lock(ctx, nsPath)
	if errors.Is(err, ErrNamespaceGone) {
		return CleanupResult{NamespaceGone: true}, nil
	}
	if err != nil {
		return CleanupResult{}, err
	}
	defer l.unlock()
	res, err := Cleanup(ctx, nsPath, allocID)
	if err == nil {
		l.remove()
	}
	return res, err
}

// Owners lists the alloc IDs owning rules in the namespace; a read, so no lock.
func (Namespaces) Owners(ctx context.Context, nsPath string) ([]string, error) {
	return Owners(ctx, nsPath)
}

// nsLock is one held namespace lock.
type nsLock struct {
	f    *os.File
	path string
}

// lock takes the namespace's lock, waiting for another holder until ctx ends.
func (n Namespaces) lock(ctx context.Context, nsPath string) (*nsLock, error) {
	path, err := lockPath(n.LockDir, nsPath)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(n.LockDir, 0o700); err != nil {
		return nil, fmt.Errorf("namespace lock: %w", err)
	}
	for {
		l, err := tryLock(path)
		if l != nil {
			// Which namespace this is, for pruneGone; the lock holds without it.
			_ = l.f.Truncate(0)
			_, _ = l.f.WriteAt([]byte(nsPath), 0)
		}
		if l != nil || err != nil {
			return l, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("network namespace %s: waiting for its lock %s, held by another writer "+
				"(the driver or an istio-sidecar apply or cleanup): %w", where(nsPath), path, ctx.Err())
		case <-time.After(lockPoll):
		}
	}
}

// tryLock takes the lock at path if it is free; nil, nil when another process holds it.
func tryLock(path string) (*nsLock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("namespace lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, nil
		}
		return nil, fmt.Errorf("namespace lock %s: %w", path, err)
	}
	// Removed (or replaced) by a cleanup while we waited: the lock that counts is on the file at path now.
	var held, now unix.Stat_t
	if unix.Fstat(int(f.Fd()), &held) != nil || unix.Stat(path, &now) != nil || held.Ino != now.Ino || held.Dev != now.Dev {
		f.Close()
		return nil, nil
	}
	return &nsLock{f: f, path: path}, nil
}

func (l *nsLock) unlock() { l.f.Close() }

// remove deletes the lock file, still held; the next writer creates it again.
func (l *nsLock) remove() { _ = os.Remove(l.path) }

// pruneGone removes the lock files of group namespaces that no longer exist (or whose path now names another
// namespace), each under its own lock so that no holder loses it.
func (n Namespaces) pruneGone() {
	entries, err := os.ReadDir(n.LockDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		path := filepath.Join(n.LockDir, e.Name())
		nsPath, err := os.ReadFile(path)
		if err != nil || len(nsPath) == 0 {
			continue // the host's namespace, or a file being written
		}
		if now, err := lockPath(n.LockDir, string(nsPath)); err == nil && now == path {
			continue
		}
		if l, err := tryLock(path); l != nil && err == nil {
			l.remove()
			l.unlock()
		}
	}
}

// lockPath names the namespace's lock by the namespace's identity. A namespace that no longer exists has
// nothing to lock: ErrNamespaceGone.
func lockPath(dir, nsPath string) (string, error) {
	target := nsPath
	if target == "" {
		target = "/proc/self/ns/net"
	}
	var st unix.Stat_t
	if err := unix.Stat(target, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return "", fmt.Errorf("%w: %s", ErrNamespaceGone, nsPath)
		}
		return "", fmt.Errorf("namespace lock: %s: %w", target, err)
	}
	return filepath.Join(dir, fmt.Sprintf("%d-%d.lock", st.Dev, st.Ino)), nil
}

func where(nsPath string) string {
	if nsPath == "" {
		return "(this process's)"
	}
	return nsPath
}
