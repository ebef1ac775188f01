package harness

import (
	"strings"
)

// checkHostRules is shutdown's look at the host namespace's rules (Options.CheckHostRules): interception rules
// left there fail the test and are removed; rules naming one of the agent's allocations (CNI's per-allocation
// chains) fail it; any other change since the start, such as the bridge chains Nomad creates once and never
// removes, is logged.
func (a *Agent) checkHostRules(t T) {
	after, err := snapshotRules("")
	if err != nil {
		t.Errorf("%v", err)
		return
	}
	left := false
	if tagged := after.Tagged(); len(tagged) > 0 {
		left = true
		t.Errorf("interception rules left in the host namespace:\n%s", strings.Join(tagged, "\n"))
		if _, err := RemoveTaggedRules(""); err != nil {
			t.Errorf("removing them: %v", err)
		}
	} else {
		t.Logf("interception rules (ISTIO_ chains, rules tagged %s<alloc>) in the host namespace: none", RuleTag)
	}
	ids := a.allocIDs()
	for _, id := range ids {
		if named := after.Mentioning(id); len(named) > 0 {
			left = true
			t.Errorf("host rules naming allocation %s left:\n%s", id, strings.Join(named, "\n"))
		}
	}
	if left {
		return
	}
	if len(ids) > 0 {
		t.Logf("host rules naming the allocations (CNI's per-allocation chains): none")
	}
	if diff := a.hostRules.Diff(after); diff != nil {
		t.Logf("other changes to the host's rules since the agent started, none naming its allocations (Nomad's "+
			"shared bridge chains, which Nomad never removes, or another Nomad client on this host):\n%s",
			strings.Join(diff, "\n"))
	} else {
		t.Logf("host rules: the same as before the agent started")
	}
}
