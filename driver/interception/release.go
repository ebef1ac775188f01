package interception

import (
	"context"
	"slices"
	"time"
)

// release removes the allocation's tagged rules (by tag: it never recomputes the config that applied them)
// and, with hostLock, gives back the host lock if the allocation holds it. A namespace that is already gone
// took the rules with it. The caller holds the allocation's lock.
func (t *Tracker) release(allocID, netns string, hostLock bool) (removed int) {
	// Its own deadline, not the plugin's: a release runs from a timer or a stop, and must finish either way.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	logger := t.logger.With("alloc_id", allocID)
	res, err := t.nf.Cleanup(ctx, netns, allocID)
	switch {
	case err != nil:
		logger.Error("removing the interception rules", "netns", netns, "error", err)
	case res.NamespaceGone:
		logger.Debug("network namespace already gone with its rules", "netns", netns)
	default:
		logger.Info("interception rules removed", "rules", res.Removed, "netns", netns, "passthrough6_removed", res.Passthrough6Removed)
	}
	if hostLock {
		if err := t.hostLock().release(allocID); err != nil {
			logger.Error("releasing the host lock", "error", err)
		}
	}
	return res.Removed
}

// Reconcile runs once per plugin process, a grace period after it starts, so that the tasks Nomad recovers
// or restarts have claimed theirs first: rules and a host lock left in the host namespace by allocations that
// nothing holds are removed. Group namespaces need no sweep: Nomad destroys them, and their rules, with their
// allocations.
func (t *Tracker) Reconcile(ctx context.Context) {
	elapsed := make(chan struct{})
	wait := t.afterFunc(t.current().Grace, func() { close(elapsed) })
	defer wait.Stop()
	select {
	case <-ctx.Done():
		return
	case <-elapsed:
	}
	if err := t.Sweep(ctx, ""); err != nil {
		t.logger.Error("reconciling interception rules in the host namespace", "error", err)
	}
}

// Sweep removes the rules in a namespace, and the host lock, of every allocation no lease holds.
func (t *Tracker) Sweep(ctx context.Context, netns string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	owners, err := t.nf.Owners(ctx, netns)
	if err != nil {
		return err
	}
	lockOwner, _ := t.hostLock().owner()
	if lockOwner != "" && !slices.Contains(owners, lockOwner) {
		owners = append(owners, lockOwner)
	}
	for _, allocID := range owners {
		unlock := t.lock(allocID)
		if !t.Held(allocID) {
			t.logger.Warn("removing interception left by an allocation this plugin does not run", "alloc_id", allocID)
			t.release(allocID, netns, true)
		}
		unlock()
	}
	return nil
}
