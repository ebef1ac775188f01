package policy

import (
	"strings"
	"testing"
)

func TestDefaultPolicyAllowsTheSameName(t *testing.T) {
	var p *Policy
	if r := p.Refusal("team-a", "team-a"); r != "" {
		t.Errorf("team-a refused: %s", r)
	}
	r0 := p.Refusal("Team_A", "team-a")
	for _, want := range []string{`"Team_A"`, "not a DNS label", "explicit entry", "-namespace-policy"} {
		if !strings.Contains(r0, want) {
			t.Errorf("reason %q does not say %s", r0, want)
		}
	}
	r := p.Refusal("team-a", "payments")
	for _, want := range []string{`"team-a"`, `"payments"`, "-namespace-policy"} {
		if !strings.Contains(r, want) {
			t.Errorf("reason %q does not name %s", r, want)
		}
	}
	if r := p.Refusal(Reserved, "istio-system"); !strings.Contains(r, "reserved") {
		t.Errorf("istio-system: %q", r)
	}
}

func TestPolicyFile(t *testing.T) {
	p, err := Parse([]byte(`{"team-a": ["payments"], "*": ["shared"]}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		nomad, ns string
		allowed   bool
	}{
		{"team-a", "payments", true},
		{"team-a", "shared", true},
		{"team-b", "shared", true},
		{"team-b", "payments", false},
		{"team-a", "team-a", false}, // a file replaces the default
		{"team-a", "kube-system", false},
	} {
		if got := p.Refusal(c.nomad, c.ns) == ""; got != c.allowed {
			t.Errorf("%s claiming %s: allowed=%v, want %v (%s)", c.nomad, c.ns, got, c.allowed, p.Refusal(c.nomad, c.ns))
		}
	}
}

func TestParseNamesTheBadEntry(t *testing.T) {
	for doc, want := range map[string]string{
		`{"istio-system": ["a"]}`: `"istio-system"`,
		`{"a": ["Not_A_Label"]}`:  `"Not_A_Label"`,
		`{"a": ["istio-system"]}`: "reserved",
		`["a"]`:                   "namespace policy",
	} {
		_, err := Parse([]byte(doc))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%s) = %v, want an error naming %s", doc, err, want)
		}
	}
}
