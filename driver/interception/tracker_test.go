package interception

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

const (
	allocA = "5f0c7a0e-1d2b-4c3a-8e9f-0a1b2c3d4e5f"
	allocB = "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d"
	group  = "/var/run/netns/" + allocA
	host   = ""
)

func lockOwner(t *testing.T, tr *Tracker) string {
	t.Helper()
	owner, err := tr.hostLock().owner()
	if err != nil {
		t.Fatal(err)
	}
	return owner
}

// A start that fails after its rules went in, on an allocation that held nothing, takes them out at once.
func TestUndo_FirstStartGivesEverythingBackAtOnce(t *testing.T) {
	tr, nf, clock := newTestTracker(t)
	lease, reports, err := tr.Acquire(t.Context(), allocA, host, ruleset(allocA))
	if err != nil {
		t.Fatal(err)
	}
	if len(reports) != 1 || !reports[0].Changed || reports[0].Found {
		t.Fatalf("reports %+v, want one fresh family", reports)
	}
	if !nf.holds(host, allocA) || lockOwner(t, tr) != allocA {
		t.Fatalf("after acquire: rules %v, lock %q", nf.holds(host, allocA), lockOwner(t, tr))
	}
	lease.Undo()
	if nf.holds(host, allocA) || lockOwner(t, tr) != "" || tr.Held(allocA) || len(clock.pending()) != 0 {
		t.Fatalf("after undo: rules %v, lock %q, held %v, pending releases %d",
			nf.holds(host, allocA), lockOwner(t, tr), tr.Held(allocA), len(clock.pending()))
	}
}

// The rules outlive the sidecar's exit: a restart within the grace period finds them, a restart that fails
// leaves them for the grace period, and the grace period's end takes them away.
func TestReleaseLater_RulesWaitForARestartThenGo(t *testing.T) {
	tr, nf, clock := newTestTracker(t)
	first, _, err := tr.Acquire(t.Context(), allocA, group, ruleset(allocA))
	if err != nil {
		t.Fatal(err)
	}
	first.ReleaseLater() // Envoy crashed
	if len(clock.pending()) != 1 || !nf.holds(group, allocA) {
		t.Fatalf("after the exit: %d pending releases, rules %v; want one, and the rules kept", len(clock.pending()), nf.holds(group, allocA))
	}
	restart, reports, err := tr.Acquire(t.Context(), allocA, group, ruleset(allocA))
	if err != nil {
		t.Fatal(err)
	}
	if !reports[0].Found || len(clock.pending()) != 0 {
		t.Fatalf("restart: found %v, %d pending releases; want the rules found and the release cancelled", reports[0].Found, len(clock.pending()))
	}
	restart.Undo() // the restart's Envoy never got ready
	if !nf.holds(group, allocA) || len(clock.pending()) != 1 {
		t.Fatalf("after the failed restart: rules %v, %d pending releases; want the rules kept for the grace period", nf.holds(group, allocA), len(clock.pending()))
	}
	clock.elapse()
	if nf.holds(group, allocA) || tr.Held(allocA) {
		t.Fatal("the grace period passed and the rules stayed")
	}
}

// A grace timer that fires as a restart claims the allocation (time.AfterFunc's Stop is too late once the
// function has started) finds the allocation under a newer lease and removes nothing.
func TestReleaseLater_StaleTimerNeverRemovesARestartsRules(t *testing.T) {
	tr, nf, clock := newTestTracker(t)
	first, _, err := tr.Acquire(t.Context(), allocA, host, ruleset(allocA))
	if err != nil {
		t.Fatal(err)
	}
	first.ReleaseLater()
	stale := clock.pending()[0]
	restart, _, err := tr.Acquire(t.Context(), allocA, host, ruleset(allocA))
	if err != nil {
		t.Fatal(err)
	}
	stale.f()
	if !nf.holds(host, allocA) || lockOwner(t, tr) != allocA || !tr.Held(allocA) {
		t.Fatalf("a stale timer released the restart's interception: rules %v, lock %q", nf.holds(host, allocA), lockOwner(t, tr))
	}
	first.ReleaseLater() // the old sidecar's exit, reported late, arms nothing over the newer lease
	if len(clock.pending()) != 0 {
		t.Fatalf("an old lease armed a release over a newer one")
	}
	if removed, ok := first.ReleaseNow(); ok || removed != 0 {
		t.Fatalf("an old lease released: %d rules", removed)
	}
	if removed, ok := restart.ReleaseNow(); !ok || removed != 3 || nf.holds(host, allocA) || lockOwner(t, tr) != "" {
		t.Fatalf("stop: ok %v, %d removed, rules %v, lock %q", ok, removed, nf.holds(host, allocA), lockOwner(t, tr))
	}
}

// A failed apply gives back what the start took, deciding by what the namespace holds now: nothing of the
// allocation's (and nothing held before) goes at once; rules found, or a read that fails, stay for the
// grace period.
func TestAcquire_FailedApplyDecidesByWhatIsThere(t *testing.T) {
	for _, c := range []struct {
		name      string
		there     bool
		ownersErr error
		wantLater bool
	}{
		{name: "nothing there", wantLater: false},
		{name: "rules there", there: true, wantLater: true},
		{name: "unreadable", ownersErr: errors.New("iptables-save: cannot open the namespace"), wantLater: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			tr, nf, clock := newTestTracker(t)
			if c.there {
				nf.place(host, allocA)
			}
			nf.applyErr, nf.ownersErr = errRestore, c.ownersErr
			lease, _, err := tr.Acquire(t.Context(), allocA, host, ruleset(allocA))
			if lease != nil || !errors.Is(err, errRestore) || !strings.Contains(err.Error(), "installing the interception rules") {
				t.Fatalf("got %v, %v; want the apply's error", lease, err)
			}
			later := len(clock.pending()) == 1
			if later != c.wantLater || tr.Held(allocA) != later || (lockOwner(t, tr) == allocA) != later {
				t.Fatalf("release later %v (want %v), held %v, lock %q", later, c.wantLater, tr.Held(allocA), lockOwner(t, tr))
			}
			clock.elapse()
			if lockOwner(t, tr) != "" || tr.Held(allocA) || nf.holds(host, allocA) {
				t.Fatalf("after the grace period: lock %q, held %v, rules %v", lockOwner(t, tr), tr.Held(allocA), nf.holds(host, allocA))
			}
		})
	}
}

// A restart whose apply fails keeps the rules the app relies on for the grace period, even if the
// namespace's read says they are gone.
func TestAcquire_FailedRestartKeepsWhatWasHeld(t *testing.T) {
	tr, nf, clock := newTestTracker(t)
	first, _, err := tr.Acquire(t.Context(), allocA, group, ruleset(allocA))
	if err != nil {
		t.Fatal(err)
	}
	first.ReleaseLater()
	nf.flush(group)
	nf.applyErr = errRestore
	if _, _, err := tr.Acquire(t.Context(), allocA, group, ruleset(allocA)); err == nil {
		t.Fatal("acquire succeeded")
	}
	if !tr.Held(allocA) || len(clock.pending()) != 1 {
		t.Fatalf("held %v, %d pending releases; want the allocation kept for the grace period", tr.Held(allocA), len(clock.pending()))
	}
}

// Host mode is one allocation per host: another's lock refuses the start, naming the owner, before any rule.
func TestAcquire_AnotherAllocationsHostLockRefusesBeforeApplying(t *testing.T) {
	tr, nf, _ := newTestTracker(t)
	if err := tr.hostLock().acquire(allocB); err != nil {
		t.Fatal(err)
	}
	_, _, err := tr.Acquire(t.Context(), allocA, host, ruleset(allocA))
	if err == nil || !strings.Contains(err.Error(), "allocation "+allocB+" already meshes this host") {
		t.Fatalf("got %v, want the owner named", err)
	}
	if calls := nf.transcript(); len(calls) != 0 || tr.Held(allocA) {
		t.Fatalf("calls %v, held %v; want nothing done", calls, tr.Held(allocA))
	}
	// A group-mode allocation needs no host lock.
	if _, _, err := tr.Acquire(t.Context(), allocA, group, ruleset(allocA)); err != nil {
		t.Fatal(err)
	}
}

// Drift is repaired while the lease is live, and never once a release is pending, after a stop, or through
// a lease a restart has replaced.
func TestRepair_OnlyThroughTheLiveLease(t *testing.T) {
	tr, nf, clock := newTestTracker(t)
	lease, _, err := tr.Acquire(t.Context(), allocA, group, ruleset(allocA))
	if err != nil {
		t.Fatal(err)
	}
	nf.transcript()
	if drifted, _, err := lease.Repair(t.Context(), checkTimeout); drifted || err != nil {
		t.Fatalf("in place: drifted %v, %v", drifted, err)
	}
	nf.flush(group)
	drifted, restored, err := lease.Repair(t.Context(), checkTimeout)
	if !drifted || err != nil || len(restored) != 1 {
		t.Fatalf("flushed: drifted %v, restored %v, %v", drifted, restored, err)
	}
	if got := nf.transcript(); !slices.Equal(got, []string{`verify "` + group + `" ` + allocA, `verify "` + group + `" ` + allocA, `apply "` + group + `" ` + allocA}) {
		t.Fatalf("transcript %q", got)
	}

	lease.ReleaseLater()
	nf.flush(group)
	if drifted, _, _ := lease.Repair(t.Context(), checkTimeout); drifted || len(nf.transcript()) != 0 {
		t.Fatal("repaired with a release pending")
	}
	restart, _, err := tr.Acquire(t.Context(), allocA, group, ruleset(allocA))
	if err != nil {
		t.Fatal(err)
	}
	nf.flush(group)
	nf.transcript()
	if drifted, _, _ := lease.Repair(t.Context(), checkTimeout); drifted || len(nf.transcript()) != 0 {
		t.Fatal("repaired through a replaced lease")
	}
	restart.ReleaseNow()
	nf.transcript()
	if drifted, _, _ := restart.Repair(t.Context(), checkTimeout); drifted || len(nf.transcript()) != 0 || nf.holds(group, allocA) {
		t.Fatal("repaired after the stop")
	}
	if len(clock.pending()) != 0 {
		t.Fatal("a release is still pending")
	}
}

// A stop that comes while a repair is under way waits for it, and then removes what it restored.
func TestRepair_AStopDuringARepairRemovesWhatItRestored(t *testing.T) {
	tr, nf, _ := newTestTracker(t)
	lease, _, err := tr.Acquire(t.Context(), allocA, group, ruleset(allocA))
	if err != nil {
		t.Fatal(err)
	}
	nf.flush(group)
	nf.verifying, nf.proceed = make(chan struct{}), make(chan struct{})
	repaired := make(chan bool)
	go func() {
		drifted, _, _ := lease.Repair(t.Context(), checkTimeout)
		repaired <- drifted
	}()
	<-nf.verifying
	if m := tr.stripe(allocA); m.TryLock() {
		m.Unlock()
		t.Fatal("the repair runs without the allocation's lock")
	}
	var wg sync.WaitGroup
	wg.Go(func() { lease.ReleaseNow() })
	close(nf.proceed)
	if !<-repaired {
		t.Fatal("the repair found no drift")
	}
	wg.Wait()
	if nf.holds(group, allocA) || tr.Held(allocA) {
		t.Fatal("rules left after the stop")
	}
}

// The sweep after a plugin restart removes the rules and host lock of allocations no lease holds, and keeps
// those a recovered task holds.
func TestSweep_RemovesWhatNoLeaseHolds(t *testing.T) {
	tr, nf, _ := newTestTracker(t)
	nf.place(host, allocA)
	nf.place(host, allocB)
	tr.Recover(allocB, host, ruleset(allocB))
	const locked = "0c0c0c0c-1111-2222-3333-444444444444"
	if err := tr.hostLock().acquire(locked); err != nil {
		t.Fatal(err)
	}
	if err := tr.Sweep(t.Context(), host); err != nil {
		t.Fatal(err)
	}
	if nf.holds(host, allocA) || lockOwner(t, tr) != "" {
		t.Fatalf("orphans left: rules %v, lock %q", nf.holds(host, allocA), lockOwner(t, tr))
	}
	if !nf.holds(host, allocB) || !tr.Held(allocB) {
		t.Fatal("the sweep removed a recovered allocation's rules")
	}
}

// Reconcile sweeps the host a grace period after the plugin starts, by which time recovered tasks hold theirs.
func TestReconcile_SweepsTheHostAfterTheGracePeriod(t *testing.T) {
	tr, nf, clock := newTestTracker(t)
	nf.place(host, allocA)
	clock.armed = make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		tr.Reconcile(t.Context())
		close(done)
	}()
	<-clock.armed
	if !nf.holds(host, allocA) {
		t.Fatal("swept before the grace period")
	}
	clock.elapse()
	<-done
	if nf.holds(host, allocA) {
		t.Fatal("an orphan's rules survived the reconcile")
	}
}

// A recovered task's lease releases like a started one's; a release also gives back the host lock.
func TestRecover_ExitReleasesAfterTheGracePeriod(t *testing.T) {
	tr, nf, clock := newTestTracker(t)
	nf.place(host, allocA)
	if err := tr.hostLock().acquire(allocA); err != nil {
		t.Fatal(err)
	}
	lease := tr.Recover(allocA, host, ruleset(allocA))
	lease.ReleaseLater()
	clock.elapse()
	if nf.holds(host, allocA) || lockOwner(t, tr) != "" || tr.Held(allocA) {
		t.Fatalf("after the grace period: rules %v, lock %q", nf.holds(host, allocA), lockOwner(t, tr))
	}
}

// Configure moves the host lock with the state directory; what is held stays held.
func TestConfigure_KeepsWhatIsHeld(t *testing.T) {
	tr, _, _ := newTestTracker(t)
	if _, _, err := tr.Acquire(t.Context(), allocA, group, ruleset(allocA)); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tr.Configure(Settings{StateDir: dir, Grace: checkTimeout})
	if !tr.Held(allocA) || tr.hostLock().path != filepath.Join(dir, "host-mode.lock") {
		t.Fatalf("held %v, lock %s", tr.Held(allocA), tr.hostLock().path)
	}
}
