package policy

import (
	"strings"
	"testing"
)

// TestDefaultPolicyDoesNotFoldDistinctNomadNamespacesTogether: Nomad namespace names are case-sensitive and up to
// 128 characters. Were the default policy to compare their DNS-label fold, "team-a" and "Team-A" (or two long
// names sharing their first 63 characters) could each claim the other's Istio namespace, and so each other's
// service accounts, with no operator ever allowing it.
func TestDefaultPolicyDoesNotFoldDistinctNomadNamespacesTogether(t *testing.T) {
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
