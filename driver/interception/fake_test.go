package interception

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"

	"github.com/istio-sidecar/istio-sidecar/driver/netfilter"
	"github.com/istio-sidecar/istio-sidecar/driver/rules"
)

// fakeNetfilter plays the namespaces: which allocations' rules each one holds, and the transcript of what
// the tracker asked, in order. It also checks the tracker's one locking rule: every call that changes or
// verifies an allocation's rules is made under that allocation's lock.
type fakeNetfilter struct {
	mu         sync.Mutex
	held       map[string][]string // netns -> allocations whose rules it holds
	drifted    map[string]bool     // netns whose rules someone flushed
	calls      []string
	violations []string

	applyErr  error // Apply fails, changing nothing
	ownersErr error // Owners fails
	// verifying, when set, receives a value when Verify starts, and Verify waits for proceed.
	verifying chan struct{}
	proceed   chan struct{}

	tracker *Tracker
}

func newFakeNetfilter() *fakeNetfilter {
	return &fakeNetfilter{held: map[string][]string{}, drifted: map[string]bool{}}
}

func (f *fakeNetfilter) record(call, netns, allocID string, needsLock bool) {
	f.calls = append(f.calls, fmt.Sprintf("%s %q %s", call, netns, allocID))
	if !needsLock {
		return
	}
	if m := f.tracker.stripe(allocID); m.TryLock() {
		m.Unlock()
		f.violations = append(f.violations, call+" "+allocID+" without the allocation's lock")
	}
}

func (f *fakeNetfilter) Apply(_ context.Context, netns string, rs rules.Ruleset) ([]netfilter.Report, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	alloc := rs.Owner.AllocID
	f.record("apply", netns, alloc, true)
	if f.applyErr != nil {
		return nil, f.applyErr
	}
	found := slices.Contains(f.held[netns], alloc)
	if !found {
		f.held[netns] = append(f.held[netns], alloc)
	}
	f.drifted[netns] = false
	return []netfilter.Report{{Family: rules.IPv4, Rules: 3, Changed: !found, Found: found}}, nil
}

func (f *fakeNetfilter) Verify(_ context.Context, netns string, rs rules.Ruleset) error {
	f.mu.Lock()
	f.record("verify", netns, rs.Owner.AllocID, true)
	verifying, proceed := f.verifying, f.proceed
	f.mu.Unlock()
	if verifying != nil {
		verifying <- struct{}{}
		<-proceed
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.drifted[netns] || !slices.Contains(f.held[netns], rs.Owner.AllocID) {
		return fmt.Errorf("%w: ISTIO_OUTPUT flushed", netfilter.ErrDrift)
	}
	return nil
}

// Repair is the kernel's: Verify, then Apply only if the namespace drifted.
func (f *fakeNetfilter) Repair(ctx context.Context, netns string, rs rules.Ruleset) (bool, []netfilter.Report, error) {
	if err := f.Verify(ctx, netns, rs); err == nil || !errors.Is(err, netfilter.ErrDrift) {
		return false, nil, err
	}
	reports, err := f.Apply(ctx, netns, rs)
	return true, reports, err
}

func (f *fakeNetfilter) Cleanup(_ context.Context, netns, allocID string) (netfilter.CleanupResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("cleanup", netns, allocID, true)
	if !slices.Contains(f.held[netns], allocID) {
		return netfilter.CleanupResult{}, nil
	}
	f.held[netns] = slices.DeleteFunc(f.held[netns], func(a string) bool { return a == allocID })
	return netfilter.CleanupResult{Removed: 3}, nil
}

func (f *fakeNetfilter) Owners(_ context.Context, netns string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("owners", netns, "", false)
	if f.ownersErr != nil {
		return nil, f.ownersErr
	}
	return slices.Clone(f.held[netns]), nil
}

// holds says whether the namespace holds the allocation's rules.
func (f *fakeNetfilter) holds(netns, allocID string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Contains(f.held[netns], allocID)
}

// place puts an allocation's rules in a namespace behind the tracker's back (an earlier plugin process).
func (f *fakeNetfilter) place(netns, allocID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.held[netns] = append(f.held[netns], allocID)
}

func (f *fakeNetfilter) flush(netns string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.drifted[netns] = true
}

// transcript returns the calls made so far and forgets them.
func (f *fakeNetfilter) transcript() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.calls
	f.calls = nil
	return out
}

// fakeClock holds the tracker's timers until a test fires them.
type fakeClock struct {
	mu     sync.Mutex
	timers []*fakeTimer
	// armed, when set, receives a value as each timer is armed.
	armed chan struct{}
}

type fakeTimer struct {
	clock   *fakeClock
	f       func()
	stopped bool
	fired   bool
}

func (c *fakeClock) afterFunc(_ time.Duration, f func()) timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{clock: c, f: f}
	c.timers = append(c.timers, t)
	if c.armed != nil {
		c.armed <- struct{}{}
	}
	return t
}

func (t *fakeTimer) Stop() bool {
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	was := !t.stopped && !t.fired
	t.stopped = true
	return was
}

// pending lists the timers neither stopped nor fired.
func (c *fakeClock) pending() []*fakeTimer {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*fakeTimer
	for _, t := range c.timers {
		if !t.stopped && !t.fired {
			out = append(out, t)
		}
	}
	return out
}

// elapse lets the grace period pass: every pending timer fires.
func (c *fakeClock) elapse() {
	for _, t := range c.pending() {
		c.mu.Lock()
		t.fired = true
		c.mu.Unlock()
		t.f()
	}
}

// newTestTracker is a tracker over the fake namespaces and clock, its host lock in a fresh directory.
func newTestTracker(t *testing.T) (*Tracker, *fakeNetfilter, *fakeClock) {
	t.Helper()
	nf, clock := newFakeNetfilter(), &fakeClock{}
	tr := New(hclog.NewNullLogger(), nf, Settings{StateDir: t.TempDir(), Grace: time.Minute})
	tr.afterFunc = clock.afterFunc
	nf.tracker = tr
	t.Cleanup(func() {
		if len(nf.violations) > 0 {
			t.Errorf("locking rule broken: %v", nf.violations)
		}
	})
	return tr, nf, clock
}

func ruleset(allocID string) rules.Ruleset {
	return rules.Ruleset{Owner: rules.Owner{AllocID: allocID}}
}

var errRestore = errors.New("iptables-restore: line 12 failed")

// checkTimeout bounds a drift check; the fake namespaces never take it.
const checkTimeout = 30 * time.Second
