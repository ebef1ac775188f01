package netfilter

import (
	"context"
	"errors"
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"github.com/istio-sidecar/istio-sidecar/driver/rules"
	"github.com/istio-sidecar/istio-sidecar/internal/testenv"
)

var dnsEnv = rules.Env{HasIPv6: true, Nameservers: []netip.Addr{netip.MustParseAddr("10.212.0.53"), netip.MustParseAddr("fd00::53")}}

// TestApplyVerifyCleanup runs the full cycle on each backend: foreign rules kept byte for byte, re-apply a
// no-op, a changed ruleset replacing ours (stale chains gone), cleanup restoring the exact prior state.
func TestApplyVerifyCleanup(t *testing.T) {
	requireRoot(t)
	for _, backend := range []BackendName{NFTables, Legacy} {
		t.Run(string(backend), func(t *testing.T) {
			ctx := testCtx(t)
			name, path := newNS(t)
			flavour := map[BackendName]string{NFTables: "nft", Legacy: "legacy"}[backend]
			// Foreign rules in the backend under test also make detection pick it.
			addForeign(t, name, flavour)
			before := saveAll(t, name, backend)

			dns := build(t, rules.Spec{DNSCapture: true, InterceptionMode: "TPROXY", ExcludeInterfaces: []string{"eth9"}}, dnsEnv, allocA)
			reps, err := Apply(ctx, path, dns)
			mustf(t, err, "apply")
			if len(reps) != 2 || reps[0].Backend != backend || !reps[0].Changed || reps[0].Found || reps[0].Rules == 0 {
				t.Fatalf("reports %+v", reps)
			}
			t.Log(reps[0], "|", reps[1])
			mustf(t, Verify(ctx, path, dns), "verify")

			applied := saveAll(t, name, backend)
			if foreign := withoutOurs(applied); foreign != before {
				t.Errorf("foreign rules changed by apply:\n--- before\n%s\n--- after, ours removed\n%s", before, foreign)
			}
			reps, err = Apply(ctx, path, dns)
			mustf(t, err, "re-apply")
			if reps[0].Changed || reps[1].Changed || !reps[0].Found || !reps[1].Found {
				t.Errorf("re-apply changed something, or did not find our rules: %+v", reps)
			}
			if after := saveAll(t, name, backend); after != applied {
				t.Errorf("re-apply changed iptables-save:\n%s\nvs\n%s", applied, after)
			}

			plain := build(t, rules.Spec{}, rules.Env{}, allocA) // IPv4 only: our IPv6 rules must go

			_, err = Apply(ctx, path, plain)
			mustf(t, err, "apply changed ruleset")
			mustf(t, Verify(ctx, path, plain), "verify changed ruleset")
			if err := Verify(ctx, path, dns); !errors.Is(err, ErrDrift) {
				t.Errorf("old ruleset still verifies: %v", err)
			}
			if s := saveAll(t, name, backend); strings.Contains(s, "ISTIO_OUTPUT_DNS") || strings.Contains(s, "ISTIO_TPROXY") ||
				strings.Count(s, rules.TagPrefix) != plain.Families[0].RuleCount() {
				t.Errorf("stale chains left after replace:\n%s", s)
			}

			res, err := Cleanup(ctx, path, allocA)
			mustf(t, err, "cleanup")
			if res.Removed == 0 || res.NamespaceGone {
				t.Errorf("cleanup result %+v", res)
			}
			if after := saveAll(t, name, backend); after != before {
				t.Errorf("cleanup did not restore the prior state:\n--- before\n%s\n--- after\n%s", before, after)
			}
		})
	}
}

// TestTwoOwners: chain names are Istio's, so a namespace holds one owner; a second gets a clear error and
// cleaning it up leaves the first intact.
func TestTwoOwners(t *testing.T) {
	requireRoot(t)
	ctx := testCtx(t)
	_, path := newNS(t)
	a := build(t, rules.Spec{}, rules.Env{}, allocA)
	_, err := Apply(ctx, path, a)
	mustf(t, err, "apply A")
	b := build(t, rules.Spec{}, rules.Env{}, allocB)
	if _, err := Apply(ctx, path, b); !errors.Is(err, rules.ErrOtherOwner) || !strings.Contains(err.Error(), allocA) {
		t.Fatalf("second owner: err %v, want ErrOtherOwner naming %s", err, allocA)
	}
	owners, err := Owners(ctx, path)
	mustf(t, err, "owners")
	if len(owners) != 1 || owners[0] != allocA {
		t.Fatalf("owners %v", owners)
	}
	res, err := Cleanup(ctx, path, allocB)
	mustf(t, err, "cleanup B")
	if res.Removed != 0 {
		t.Errorf("cleanup of B removed %d rules", res.Removed)
	}
	mustf(t, Verify(ctx, path, a), "A after cleanup of B")
}

// TestFailedRestoreLeavesNothing: a payload failing on its last rule leaves none of ours, and a family that
// fails after another was applied makes Apply undo the first.
func TestFailedRestoreLeavesNothing(t *testing.T) {
	requireRoot(t)
	ctx := testCtx(t)
	name, path := newNS(t)
	addForeign(t, name, "nft")
	before := saveAll(t, name, NFTables)
	rs := build(t, rules.Spec{}, rules.Env{HasIPv6: true}, allocA)
	b, err := Detect(ctx, path)
	mustf(t, err, "detect")

	payload := rs.Payload(rules.IPv4)
	bad := strings.TrimSuffix(payload, "COMMIT\n") + "-A ISTIO_OUTPUT -m nosuchmatch -j RETURN\nCOMMIT\n"
	err = restore(ctx, path, b, rules.IPv4, bad)
	if !errors.Is(err, ErrMissingSupport) || !strings.Contains(err.Error(), "nosuchmatch") {
		t.Errorf("bad match: err %v, want ErrMissingSupport naming nosuchmatch", err)
	}
	if after := saveAll(t, name, NFTables); after != before {
		t.Errorf("failed restore changed state:\n%s", after)
	}

	// Break only the IPv6 family: IPv4 prefixes in IPv6 rules.
	rs.Families[1] = asFamily(rs.Families[0], rules.IPv6)
	if _, err := Apply(ctx, path, rs); err == nil {
		t.Fatal("apply with a broken IPv6 family succeeded")
	}
	if after := saveAll(t, name, NFTables); after != before {
		t.Errorf("IPv4 not undone after IPv6 failed:\n%s", after)
	}
}

// asFamily files a family's rules under family f. Their addresses are of the other family, which
// iptables-restore refuses: that family's transaction fails whole.
func asFamily(fr rules.FamilyRules, f rules.Family) rules.FamilyRules {
	fr.Family = f
	return fr
}

func TestCleanupNamespaceGone(t *testing.T) {
	requireRoot(t)
	res, err := Cleanup(testCtx(t), "/var/run/netns/isc-test-does-not-exist", allocA)
	if err != nil || !res.NamespaceGone || res.Removed != 0 {
		t.Fatalf("got %+v, %v; want NamespaceGone and no error", res, err)
	}
	if _, err := Cleanup(testCtx(t), "", "bad id"); !errors.Is(err, rules.ErrBadOwner) {
		t.Fatalf("bad alloc id: %v", err)
	}
}

// addForeign puts another program's rules in every table we use, both families, in front of and (for OUTPUT)
// around where ours go. nf_tables creates a table on first use and iptables-restore cannot drop it again, so
// pre-existing tables are also what makes "exactly as before" a byte-for-byte comparison.
func addForeign(t *testing.T, nsName, flavour string) {
	for _, bin := range []string{"iptables-" + flavour, "ip6tables-" + flavour} {
		for _, table := range []string{"nat", "mangle", "raw", "filter"} {
			sh(t, "ip", "netns", "exec", nsName, bin, "-t", table, "-A", "OUTPUT", "-p", "tcp", "--dport", "9999",
				"-m", "comment", "--comment", "foreign app", "-j", "ACCEPT")
		}
		sh(t, "ip", "netns", "exec", nsName, bin, "-t", "nat", "-A", "PREROUTING", "-p", "udp", "-j", "RETURN")
	}
}

// withoutOurs drops our tagged rules and chain declarations from a save, leaving everything else as is.
func withoutOurs(save string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(save, "\n") {
		if strings.Contains(l, rules.TagPrefix) || strings.HasPrefix(l, ":ISTIO_") {
			continue
		}
		b.WriteString(l)
	}
	return b.String()
}

// TestLegacyInUse: the legacy saves are spared only where x_tables has no table in the namespace, and a family
// with a legacy table is read.
func TestLegacyInUse(t *testing.T) {
	requireRoot(t)
	if _, ok := probeBackend(testCtx(t), Legacy); !ok {
		testenv.SkipOrFail(t, "iptables-legacy is not installed")
	}
	name, path := newNS(t)
	if legacyInUse(path, rules.IPv4) || legacyInUse(path, rules.IPv6) {
		t.Fatalf("a fresh namespace reports legacy tables")
	}
	sh(t, "ip", "netns", "exec", name, "iptables-legacy", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "--dport", "9999", "-j", "RETURN")
	if !legacyInUse(path, rules.IPv4) {
		t.Errorf("IPv4 nat table in use by legacy, not reported")
	}
	if legacyInUse(path, rules.IPv6) {
		t.Errorf("IPv6 reported in use after an IPv4-only legacy rule")
	}
	ctx := testCtx(t)
	nft, _ := probeBackend(ctx, NFTables)
	legacy, _ := probeBackend(ctx, Legacy)
	keys := savesFor(path, nft, legacy)
	if len(keys) != 3 || keys[2] != (stateKey{legacy, rules.IPv4}) {
		t.Errorf("saves for the namespace: %+v, want nf_tables IPv4 and IPv6, legacy IPv4", keys)
	}
}

// TestApplyOverLeftovers: tagged rules left in a table the ruleset does not write (a cleanup that failed
// after its first table) are seen: another allocation's make Apply refuse, our own are replaced.
func TestApplyOverLeftovers(t *testing.T) {
	requireRoot(t)
	ctx := testCtx(t)
	leftover := func(alloc string) string {
		return "*raw\n:ISTIO_OUTPUT_DNS - [0:0]\n-A OUTPUT -p udp -m udp --dport 53 -m comment --comment \"" +
			rules.TagPrefix + alloc + "\" -j ISTIO_OUTPUT_DNS\nCOMMIT\n"
	}
	rs := build(t, rules.Spec{}, rules.Env{}, allocA)
	// Planted before the driver first looks at the namespace, as a failed cleanup would have left them.
	plant := func(nsName, alloc string) {
		cmd := exec.Command("ip", "netns", "exec", nsName, "iptables-nft-restore", "--noflush")
		cmd.Stdin = strings.NewReader(leftover(alloc))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("planting a leftover: %v: %s", err, out)
		}
	}

	otherName, other := newNS(t)
	plant(otherName, allocB)
	if _, err := Apply(ctx, other, rs); !errors.Is(err, rules.ErrOtherOwner) {
		t.Errorf("apply over another allocation's leftover in raw: %v, want ErrOtherOwner", err)
	}

	ownName, own := newNS(t)
	plant(ownName, allocA)
	reps, err := Apply(ctx, own, rs)
	mustf(t, err, "apply over our own leftover")
	if !reps[0].Found {
		t.Errorf("reports %+v: want our leftover found", reps)
	}
	mustf(t, Verify(ctx, own, rs), "verify after replacing our leftover")
}

// TestOwnersCutShortIsAnError: a read stopped by its context is not "no rules here".
func TestOwnersCutShortIsAnError(t *testing.T) {
	requireRoot(t)
	_, path := newNS(t)
	ctx, cancel := context.WithCancel(testCtx(t))
	cancel()
	if owners, err := Owners(ctx, path); err == nil {
		t.Fatalf("Owners with a cancelled context: %v and no error", owners)
	}
}
