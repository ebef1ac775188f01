// Package interception keeps an allocation's traffic interception for as long as the allocation lives. The
// rules (and, in host mode, the host lock) belong to the allocation, not to one sidecar process: they stay
// across the sidecar's restarts, so that app traffic fails closed while Envoy is down instead of silently
// leaving the mesh, and go when the allocation is over. The driver cannot see the allocation end, so the
// tracker infers it: a stop the driver was asked for ends it at once; a sidecar that exits on its own and does
// not start again within the grace period ends it too.
//
// Each start (or recovery) gets a Lease on its allocation's interception; the tracker holds one lease per
// allocation, and a newer start's lease replaces an older one. Everything that changes an allocation's rules
// or lock (an acquire, a drift repair, a release) runs under that allocation's lock and acts only through the
// current lease, so a grace period's release never removes rules a restart has just re-applied, and a drift
// repair never re-applies rules a stop or a release is removing.
//
// The tracker reaches the namespace only through Netfilter, the few calls of driver/netfilter it makes, so
// that grace periods, rollbacks and recovery are tested without root against a fake.
package interception

import (
	"context"
	"hash/fnv"
	"sync"
	"time"

	hclog "github.com/hashicorp/go-hclog"

	"github.com/istio-sidecar/istio-sidecar/driver/netfilter"
	"github.com/istio-sidecar/istio-sidecar/driver/rules"
)

// Netfilter is what the tracker needs of driver/netfilter: each change made under the namespace's lock, which
// serialises this plugin with every other writer on the host (the operator CLI, another plugin process).
type Netfilter interface {
	Apply(ctx context.Context, netns string, rs rules.Ruleset) ([]netfilter.Report, error)
	// Repair verifies rs and re-applies it if the namespace drifted, in one hold of the namespace's lock.
	Repair(ctx context.Context, netns string, rs rules.Ruleset) (drifted bool, restored []netfilter.Report, err error)
	Cleanup(ctx context.Context, netns, allocID string) (netfilter.CleanupResult, error)
	Owners(ctx context.Context, netns string) ([]string, error)
}

// kernel is Netfilter as driver/netfilter implements it, its namespace locks under the state_dir.
type kernel struct{ t *Tracker }

func (k kernel) namespaces() netfilter.Namespaces {
	return netfilter.Namespaces{LockDir: netfilter.LockDir(k.t.current().StateDir)}
}

func (k kernel) Apply(ctx context.Context, netns string, rs rules.Ruleset) ([]netfilter.Report, error) {
	return k.namespaces().Apply(ctx, netns, rs)
}

func (k kernel) Repair(ctx context.Context, netns string, rs rules.Ruleset) (bool, []netfilter.Report, error) {
	return k.namespaces().Repair(ctx, netns, rs)
}

func (k kernel) Cleanup(ctx context.Context, netns, allocID string) (netfilter.CleanupResult, error) {
	return k.namespaces().Cleanup(ctx, netns, allocID)
}

func (k kernel) Owners(ctx context.Context, netns string) ([]string, error) {
	return k.namespaces().Owners(ctx, netns)
}

// Settings are the plugin settings the tracker acts on.
type Settings struct {
	// StateDir holds the host lock and the namespace locks.
	StateDir string
	// Grace is how long an allocation's interception outlives its sidecar's exit, waiting for a restart.
	Grace time.Duration
}

// timer is the part of *time.Timer a pending release needs; a test's clock provides its own.
type timer interface{ Stop() bool }

// Tracker holds the interception of the allocations this plugin process runs.
type Tracker struct {
	logger    hclog.Logger
	nf        Netfilter
	afterFunc func(time.Duration, func()) timer

	mu       sync.Mutex
	settings Settings
	leases   map[string]*Lease
	// stripes serialise, per allocation, everything that changes its rules or lock. 64 hashed stripes instead
	// of a mutex per allocation, which would need its own lifetime; allocations sharing a stripe only wait.
	stripes [64]sync.Mutex
}

// New returns a tracker acting through nf; nil is driver/netfilter itself.
func New(logger hclog.Logger, nf Netfilter, s Settings) *Tracker {
	t := &Tracker{
		logger:    logger,
		nf:        nf,
		afterFunc: func(d time.Duration, f func()) timer { return time.AfterFunc(d, f) },
		settings:  s,
		leases:    map[string]*Lease{},
	}
	if nf == nil {
		t.nf = kernel{t}
	}
	return t
}

// Configure replaces the settings; what is held stays held.
func (t *Tracker) Configure(s Settings) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.settings = s
}

func (t *Tracker) current() Settings {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.settings
}

func (t *Tracker) hostLock() hostLock { return newHostLock(t.current().StateDir) }

// lock takes the allocation's lock and returns its unlock.
func (t *Tracker) lock(allocID string) func() {
	m := t.stripe(allocID)
	m.Lock()
	return m.Unlock
}

func (t *Tracker) stripe(allocID string) *sync.Mutex {
	h := fnv.New32a()
	_, _ = h.Write([]byte(allocID))
	return &t.stripes[h.Sum32()%uint32(len(t.stripes))]
}

// Held reports whether a lease holds the allocation's interception.
func (t *Tracker) Held(allocID string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.leases[allocID]
	return ok
}

// hold makes a new lease the allocation's current one, cancelling the older lease's pending release.
func (t *Tracker) hold(allocID, netns string, rs rules.Ruleset) *Lease {
	t.mu.Lock()
	defer t.mu.Unlock()
	if old, ok := t.leases[allocID]; ok && old.release != nil {
		old.release.Stop()
	}
	l := &Lease{t: t, allocID: allocID, netns: netns, rs: rs}
	t.leases[allocID] = l
	return l
}

// take ends the lease if it is still its allocation's current one, and says whether it was.
func (t *Tracker) take(l *Lease) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.leases[l.allocID] != l {
		return false
	}
	if l.release != nil {
		l.release.Stop()
	}
	delete(t.leases, l.allocID)
	return true
}

// live reports whether the lease is its allocation's current one with no release pending.
func (t *Tracker) live(l *Lease) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.leases[l.allocID] == l && l.release == nil
}
