package interception

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/istio-sidecar/istio-sidecar/driver/netfilter"
	"github.com/istio-sidecar/istio-sidecar/driver/rules"
)

// Lease is one start's (or one recovery's) claim on its allocation's interception: the namespace, and the
// ruleset it applied there. A lease acts only while it is its allocation's current one.
type Lease struct {
	t       *Tracker
	allocID string
	netns   string // "" is the host's namespace: host mode
	rs      rules.Ruleset

	// fresh: the allocation held nothing here before this start, so undoing the start removes everything at
	// once. Read and written under the allocation's lock.
	fresh bool
	// release is the pending grace-period release, if any. Guarded by the tracker's mu.
	release timer
}

// Acquire takes the host lock in host mode (netns "") and applies rs in the namespace, for a start of the
// allocation's sidecar. It returns the start's lease and the per-family reports. ctx bounds the whole; each
// step has its own deadline within it.
//
// A failed apply gives back what the start took, as Undo would; an error is always worth a retry (the
// xtables lock or another allocation's host lock may clear).
func (t *Tracker) Acquire(ctx context.Context, allocID, netns string, rs rules.Ruleset) (*Lease, []netfilter.Report, error) {
	unlock := t.lock(allocID)
	defer unlock()
	held := t.Held(allocID)
	if netns == "" {
		if err := t.hostLock().acquire(allocID); err != nil {
			return nil, nil, err
		}
	}
	l := t.hold(allocID, netns, rs)
	actx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	reports, err := t.nf.Apply(actx, netns, rs)
	if err != nil {
		// Apply leaves the namespace as it was, or says its undo failed; either way what is there now decides,
		// and only this rare path needs to look. Its own deadline: Apply may have failed on running out of
		// its own. A read that fails counts as finding the rules, which keeps them for the grace period.
		rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
		defer rcancel()
		owners, oerr := t.nf.Owners(rctx, netns)
		l.fresh = oerr == nil && !slices.Contains(owners, allocID) && !held
		t.undo(l)
		return nil, nil, fmt.Errorf("installing the interception rules: %w", err)
	}
	found := false
	for _, r := range reports {
		found = found || r.Found
	}
	l.fresh = !found && !held
	return l, reports, nil
}

// Recover claims the interception of an allocation whose sidecar an earlier plugin process started: its
// rules (and host lock) are in place already. The lease keeps the sweep away from them and lets the
// recovered sidecar's exit or stop release them.
func (t *Tracker) Recover(allocID, netns string, rs rules.Ruleset) *Lease {
	unlock := t.lock(allocID)
	defer unlock()
	return t.hold(allocID, netns, rs)
}

// Undo gives back what a start took when one of its later steps failed: everything at once if the
// allocation held nothing here before; a restart's rules, which the app relies on while the sidecar is
// down, only after the grace period, unless a retry claims them first.
func (l *Lease) Undo() {
	unlock := l.t.lock(l.allocID)
	defer unlock()
	l.t.undo(l)
}

// undo is Undo for a caller holding the allocation's lock.
func (t *Tracker) undo(l *Lease) {
	if l.fresh {
		t.releaseNow(l)
	} else {
		l.ReleaseLater()
	}
}

// ReleaseLater releases the interception after the grace period, unless a newer start claims the
// allocation first. Any exit of the sidecar may be followed by a restart.
func (l *Lease) ReleaseLater() {
	t := l.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.leases[l.allocID] != l {
		return // a newer start holds the allocation; its own exit decides
	}
	if l.release != nil {
		l.release.Stop()
	}
	l.release = t.afterFunc(t.settings.Grace, func() {
		unlock := t.lock(l.allocID)
		defer unlock()
		if t.take(l) {
			t.release(l.allocID, l.netns, l.netns == "")
		}
	})
}

// ReleaseNow releases the interception at once (a stop the driver was asked for) and reports how many
// rules went; ok is false when the lease no longer held anything.
func (l *Lease) ReleaseNow() (removed int, ok bool) {
	unlock := l.t.lock(l.allocID)
	defer unlock()
	return l.t.releaseNow(l)
}

// releaseNow is ReleaseNow for a caller holding the allocation's lock.
func (t *Tracker) releaseNow(l *Lease) (removed int, ok bool) {
	if !t.take(l) {
		return 0, false
	}
	return t.release(l.allocID, l.netns, l.netns == ""), true
}

// Repair checks that the namespace still holds exactly the lease's ruleset and, if it drifted (a firewall
// reload, a stray `iptables -F`), restores it in one transaction; the check and the restore hold the
// namespace's lock together, so no other writer comes in between. timeout bounds both. It runs only while
// the lease is current and no release is pending, so it never re-applies rules that are going.
//
// drifted says the rules differed; restored holds the apply's reports when they were put back. An error with
// drifted false is a check that could not be made.
func (l *Lease) Repair(ctx context.Context, timeout time.Duration) (drifted bool, restored []netfilter.Report, err error) {
	t := l.t
	unlock := t.lock(l.allocID)
	defer unlock()
	if !t.live(l) {
		return false, nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return t.nf.Repair(ctx, l.netns, l.rs)
}
