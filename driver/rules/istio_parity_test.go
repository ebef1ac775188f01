package rules

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestIstioParity compares our rulesets, rule by rule and chain by chain, with what the real
// `pilot-agent istio-iptables` left in iptables-save for the same settings (testdata/istio/README.md). Our
// comment match is the only difference allowed: rules are rendered without it here.
func TestIstioParity(t *testing.T) {
	istioNS := Env{Nameservers: []netip.Addr{netip.MustParseAddr("10.212.0.53"), netip.MustParseAddr("10.212.1.53")}}
	cases := []struct {
		capture string
		spec    Spec
		env     Env
		fams    []Family
	}{
		{capture: "default"},
		{capture: "dns", spec: Spec{DNSCapture: true}, env: istioNS},
		{capture: "dnsall", spec: Spec{DNSCapture: true, CaptureAllDNS: true}, env: istioNS},
		{capture: "tproxy", spec: Spec{InterceptionMode: "TPROXY", DropInvalid: true}},
		{capture: "mixed", spec: Spec{
			IncludeInboundPorts:     []string{"8080", "9090"},
			IncludeOutboundIPRanges: []string{"10.0.0.0/8", "192.168.0.0/16"},
			ExcludeOutboundIPRanges: []string{"10.1.0.0/16"},
			ExcludeOutboundPorts:    []string{"5432", "6379"},
			IncludeOutboundPorts:    []string{"3306"},
			ExcludeInterfaces:       []string{"eth9"},
		}},
		{capture: "dual", spec: Spec{DNSCapture: true, ExcludeOutboundIPRanges: []string{"10.1.0.0/16", "fd00:1::/64"}},
			env: Env{HasIPv6: true, Nameservers: istioNS.Nameservers}, fams: []Family{IPv4, IPv6}},
	}
	for _, c := range cases {
		t.Run(c.capture, func(t *testing.T) {
			rs := buildCase(t, goldenCase{name: c.capture, spec: c.spec, env: c.env})
			fams := c.fams
			if fams == nil {
				fams = []Family{IPv4}
			}
			for _, f := range fams {
				ext := ".v4.save"
				if f == IPv6 {
					ext = ".v6.save"
				}
				raw, err := os.ReadFile(filepath.Join("testdata", "istio", c.capture+ext))
				if err != nil {
					t.Fatal(err)
				}
				saved, err := ParseSave(string(raw))
				if err != nil {
					t.Fatal(err)
				}
				wantRules, wantChains := istioState(saved)
				if len(wantRules) == 0 {
					t.Fatalf("%s: no rules in the Istio capture", f)
				}
				gotRules, gotChains := untaggedState(rs, f)
				if !reflect.DeepEqual(gotChains, wantChains) {
					t.Errorf("%s chains:\n got %v\nwant %v", f, gotChains, wantChains)
				}
				compareRules(t, f, gotRules, wantRules)
			}
		})
	}
}

type tableChain struct {
	table table
	chain chain
}

func istioState(s Saved) (map[tableChain][]string, map[table][]chain) {
	rules, chains := map[tableChain][]string{}, map[table][]chain{}
	for _, t := range s.tables {
		for _, ch := range t.Chains {
			if isOwnChain(ch) {
				chains[t.Table] = append(chains[t.Table], ch)
			}
		}
		for _, r := range t.Rules {
			k := tableChain{t.Table, r.Chain}
			rules[k] = append(rules[k], r.Line)
		}
	}
	return rules, chains
}

func untaggedState(rs Ruleset, f Family) (map[tableChain][]string, map[table][]chain) {
	rules, chains := map[tableChain][]string{}, map[table][]chain{}
	fr, _ := rs.Family(f)
	for _, tr := range fr.tables {
		chains[tr.Table] = tr.Chains
		for _, r := range tr.Rules {
			k := tableChain{tr.Table, r.Chain}
			rules[k] = append(rules[k], r.line(""))
		}
	}
	return rules, chains
}

func compareRules(t *testing.T, f Family, got, want map[tableChain][]string) {
	t.Helper()
	for k, w := range want {
		if d := diffChain(string(k.table)+"/"+string(k.chain), w, got[k]); d != nil {
			t.Errorf("%s: %v", f, d)
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: %s/%s: Istio has no such chain, we have %q", f, k.table, k.chain, g)
		}
	}
}
