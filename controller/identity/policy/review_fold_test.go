package policy

import (
	"strings"
	"testing"
)

// TestReviewDefaultPolicyFoldsDistinctNomadNamespacesTogether (review finding): Nomad namespace names are
// case-sensitive and up to 128 characters, but the default policy compares their DNS-label fold. Two tenants'
// Nomad namespaces, "team-a" and "Team-A" (or two long names sharing their first 63 characters), may each claim
// the other's Istio namespace, and so each other's service accounts, with no operator ever allowing it.
func TestReviewDefaultPolicyFoldsDistinctNomadNamespacesTogether(t *testing.T) {
	var p *Policy
	long := strings.Repeat("a", 63)
	for _, c := range []struct{ attacker, victimIstioNS string }{
		{"Team-A", "team-a"},
		{"TEAM-A", "team-a"},
		{long + "-evil", long},
		{"-team-a-", "team-a"},
	} {
		if r := p.Refusal(c.attacker, c.victimIstioNS); r == "" {
			t.Errorf("default policy: Nomad namespace %q may claim Istio namespace %q, which is Nomad namespace %q's",
				c.attacker, c.victimIstioNS, c.victimIstioNS)
		}
	}
}
