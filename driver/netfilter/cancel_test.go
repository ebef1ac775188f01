package netfilter

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/istio-sidecar/istio-sidecar/driver/rules"
)

// An interruption (SIGTERM to `istio-sidecar apply`, which cancels its context) can land after
// iptables-restore committed the mangle table and before it commits nat. The revert of that attempt must still
// run, with a context of its own: the caller's is the one that was cancelled. The test cancels at exactly that
// moment, seen from outside: our mangle rules in place, our nat rules not yet (a nat table of 10,000 rules
// gives the window), and then finds none of our rules left.
func TestApply_CancelledBetweenTablesLeavesNothing(t *testing.T) {
	requireRoot(t)
	name, path := newNS(t)
	ranges := make([]string, 10000)
	for i := range ranges {
		ranges[i] = fmt.Sprintf("10.%d.%d.0/24", i/256, i%256)
	}
	rs := build(t, rules.Spec{InterceptionMode: "TPROXY", ExcludeOutboundIPRanges: ranges}, rules.Env{}, allocA)
	hits := 0
	for try := 0; try < 20 && hits < 3; try++ {
		if cancelledMidRestore(t, name, path, rs) {
			hits++
		}
		// The tables the restore touched stay, with their empty built-in chains; nothing of ours may.
		if after := saveAll(t, name, NFTables); strings.Contains(after, "ISTIO_") || strings.Contains(after, rules.TagPrefix) {
			t.Fatalf("try %d: an interrupted apply left rules:\n%s", try, after)
		}
	}
	if hits == 0 {
		t.Fatal("never cancelled between the mangle and nat commits")
	}
}

// cancelledMidRestore runs Apply and cancels it once our mangle rules are committed and our nat rules are not;
// it reports whether it caught that moment.
func cancelledMidRestore(t *testing.T, name, path string, rs rules.Ruleset) bool {
	t.Helper()
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := Apply(ctx, path, rs); done <- err }()
	tag := rules.TagPrefix + allocA
	for {
		select {
		case err := <-done:
			if err == nil {
				// The apply finished first: take it back for the next try.
				_, err = Cleanup(testCtx(t), path, allocA)
				mustf(t, err, "cleanup")
			}
			return false
		default:
		}
		mangle := sh(t, "ip", "netns", "exec", name, "iptables-nft-save", "-t", "mangle")
		nat := sh(t, "ip", "netns", "exec", name, "iptables-nft-save", "-t", "nat")
		if strings.Contains(mangle, tag) && !strings.Contains(nat, tag) {
			cancel()
			if err := <-done; err == nil {
				t.Fatal("Apply cancelled mid-restore reported success")
			}
			return true
		}
	}
}
