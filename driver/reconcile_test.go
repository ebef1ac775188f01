package driver

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/nomad/nomad/structs"
	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/istio-sidecar/istio-sidecar/driver/netfilter"
	"github.com/istio-sidecar/istio-sidecar/driver/rules"
)

// A restarted plugin removes what allocations it does not run left behind, and keeps what it holds.
func TestSweep_RemovesOrphansKeepsHeld(t *testing.T) {
	integration(t)
	netns := newNetns(t)
	d := New(t.Context(), testLogger(t))
	s := *d.settings
	s.StateDir = t.TempDir()
	d.configure(&s)
	lock := filepath.Join(s.StateDir, "host-mode.lock")
	const orphan, held = "11111111-2222-3333-4444-555555555555", "66666666-7777-8888-9999-000000000000"
	for _, alloc := range []string{orphan, held} {
		rs, err := interceptionInputs{}.ruleset(d.settings, alloc)
		if err != nil {
			t.Fatal(err)
		}
		// Two owners cannot share one namespace's chains, so each gets its own.
		ns := netns
		if alloc == held {
			ns = newNetns(t)
			d.allocs.Recover(held, ns, rs)
		}
		if _, err := netfilter.Apply(t.Context(), ns, rs); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _, _ = netfilter.Cleanup(t.Context(), ns, alloc) })
	}
	if err := os.WriteFile(lock, []byte(orphan+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := d.allocs.Sweep(t.Context(), netns); err != nil {
		t.Fatal(err)
	}
	if owners, _ := netfilter.Owners(t.Context(), netns); len(owners) != 0 {
		t.Fatalf("orphaned rules left: %v", owners)
	}
	if owner, _ := os.ReadFile(lock); len(owner) != 0 {
		t.Fatalf("orphaned host lock left, owned by %s", owner)
	}
	if !d.allocs.Held(held) {
		t.Fatal("the sweep dropped an allocation the driver holds")
	}
}

// Even where the scheduler was bypassed, a second host-mode allocation fails at once, naming the owner, and
// installs nothing in the host namespace.
func TestStartTask_HostModeLockNamesTheOwner(t *testing.T) {
	b := integration(t)
	stateDir := t.TempDir()
	td := newTestDriver(t, b, func(c *Config) { c.StateDir = stateDir })
	const owner = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
	if err := os.WriteFile(filepath.Join(stateDir, "host-mode.lock"), []byte(owner+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	before, err := netfilter.Owners(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	cfg := td.newRejectedTask(t, "", "")
	def := rules.StandardDefaults()
	cfg.Resources = &drivers.Resources{Ports: &structs.AllocatedPorts{
		{Label: "istio-outbound", Value: int(def.OutboundCapturePort)},
		{Label: "istio-inbound", Value: int(def.InboundCapturePort)},
	}}
	_, _, err = td.StartTask(cfg)
	if err == nil || !strings.Contains(err.Error(), "allocation "+owner+" already meshes this host") {
		t.Fatalf("got %v, want the owner named", err)
	}
	after, err := netfilter.Owners(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(after, ",") != strings.Join(before, ",") {
		t.Fatalf("the host namespace's rule owners changed: before %v, after %v", before, after)
	}
	if left := procsIn(cfg.TaskDir().Dir); len(left) != 0 {
		t.Fatalf("processes started: %v", left)
	}
}
