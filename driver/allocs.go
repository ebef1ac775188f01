package driver

import (
	"context"
	"hash/fnv"
	"slices"
	"sync"
	"time"

	"github.com/istio-sidecar/istio-sidecar/driver/netfilter"
)

// The interception rules (and, in host mode, the host lock) belong to the allocation, not to one sidecar
// process: they stay across the sidecar's restarts, so that app traffic fails closed while Envoy is down
// instead of silently leaving the mesh, and go when the allocation is over. The driver cannot see the
// allocation end, so it infers it: a stop it was asked for ends it at once; a sidecar that exits on its own
// and does not start again within the grace period ends it too.
type allocState struct {
	netns string
	host  bool
	timer *time.Timer
}

type allocTracker struct {
	mu sync.Mutex
	m  map[string]*allocState
	// stripes serialise, per allocation, everything that changes its rules or lock: a start, a drift repair, a
	// release. Without it a grace timer's release could remove the rules a restart has just re-applied.
	stripes [64]sync.Mutex
}

// lock takes the allocation's lock and returns its unlock.
func (a *allocTracker) lock(allocID string) func() {
	h := fnv.New32a()
	_, _ = h.Write([]byte(allocID))
	m := &a.stripes[h.Sum32()%uint32(len(a.stripes))]
	m.Lock()
	return m.Unlock
}

func newAllocTracker() *allocTracker { return &allocTracker{m: map[string]*allocState{}} }

// hold records that the allocation's rules are in use and cancels a pending release.
func (a *allocTracker) hold(allocID, netns string, host bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if st, ok := a.m[allocID]; ok && st.timer != nil {
		st.timer.Stop()
	}
	a.m[allocID] = &allocState{netns: netns, host: host}
}

func (a *allocTracker) held(allocID string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ok := a.m[allocID]
	return ok
}

// take removes the allocation if st is still its state, that is unless another start has claimed it since.
func (a *allocTracker) take(allocID string, st *allocState) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if cur, ok := a.m[allocID]; !ok || cur != st {
		return false
	}
	delete(a.m, allocID)
	return true
}

// remove removes the allocation, returning its state if it was held.
func (a *allocTracker) remove(allocID string) (*allocState, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	st, ok := a.m[allocID]
	delete(a.m, allocID)
	return st, ok
}

// releaseLater releases the allocation after grace unless a start holds it again first.
func (d *Driver) releaseLater(allocID string, grace time.Duration) {
	d.allocs.mu.Lock()
	defer d.allocs.mu.Unlock()
	st, ok := d.allocs.m[allocID]
	if !ok {
		return
	}
	if st.timer != nil {
		st.timer.Stop()
	}
	st.timer = time.AfterFunc(grace, func() {
		unlock := d.allocs.lock(allocID)
		defer unlock()
		if d.allocs.take(allocID, st) {
			d.release(allocID, st.netns, st.host)
		}
	})
}

// releaseNow releases the allocation's rules and lock at once, reporting how many rules went.
func (d *Driver) releaseNow(allocID string) (removed int, ok bool) {
	unlock := d.allocs.lock(allocID)
	defer unlock()
	return d.releaseNowLocked(allocID)
}

// releaseNowLocked is releaseNow for a caller that holds the allocation's lock.
func (d *Driver) releaseNowLocked(allocID string) (removed int, ok bool) {
	st, held := d.allocs.remove(allocID)
	if !held {
		return 0, false
	}
	if st.timer != nil {
		st.timer.Stop()
	}
	return d.release(allocID, st.netns, st.host), true
}

// release removes the allocation's tagged rules (by tag: it never recomputes the config that applied them)
// and gives back the host lock. A namespace that is already gone took the rules with it.
func (d *Driver) release(allocID, netns string, host bool) (removed int) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	logger := d.logger.With("alloc_id", allocID)
	res, err := netfilter.Cleanup(ctx, netns, allocID)
	switch {
	case err != nil:
		logger.Error("removing the interception rules", "netns", netns, "error", err)
	case res.NamespaceGone:
		logger.Debug("network namespace already gone with its rules", "netns", netns)
	default:
		logger.Info("interception rules removed", "rules", res.Removed, "netns", netns, "passthrough6_removed", res.Passthrough6Removed)
	}
	if host {
		if err := d.hostLock().release(allocID); err != nil {
			logger.Error("releasing the host lock", "error", err)
		}
	}
	return res.Removed
}

func (d *Driver) hostLock() hostLock { return newHostLock(d.settings.StateDir) }

// reconcile runs once per plugin process, a grace period after it starts: rules and a host lock left in the
// host namespace by allocations that no recovered or new task holds are removed. Group namespaces need no
// sweep: Nomad destroys them, and their rules, with their allocations.
func (d *Driver) reconcile() {
	select {
	case <-d.ctx.Done():
		return
	case <-time.After(d.settings.gracePeriod):
	}
	if err := d.sweep(""); err != nil {
		d.logger.Error("reconciling interception rules in the host namespace", "error", err)
	}
}

// sweep removes the rules in a namespace, and the host lock, of every allocation the driver does not hold.
func (d *Driver) sweep(netns string) error {
	ctx, cancel := context.WithTimeout(d.ctx, time.Minute)
	defer cancel()
	owners, err := netfilter.Owners(ctx, netns)
	if err != nil {
		return err
	}
	lockOwner, _ := d.hostLock().owner()
	if lockOwner != "" && !slices.Contains(owners, lockOwner) {
		owners = append(owners, lockOwner)
	}
	for _, allocID := range owners {
		unlock := d.allocs.lock(allocID)
		if !d.allocs.held(allocID) {
			d.logger.Warn("removing interception left by an allocation this plugin does not run", "alloc_id", allocID)
			d.release(allocID, netns, true)
		}
		unlock()
	}
	return nil
}
