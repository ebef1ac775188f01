package rules

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// parityCase is one recording of Istio's own `pilot-agent istio-iptables` (testdata/istio/README.md) and our
// settings for the same run.
type parityCase struct {
	capture  string
	spec     Spec
	env      Env
	defaults func(*Defaults)
	fams     []Family // IPv4 only when nil
}

// recordingGroups are the groups capture.sh gives the recording namespace, as the edge would resolve them.
var recordingGroups = map[string]uint32{"root": 0, "java": 2001, "ftp": 2002}

var istioNameservers = []netip.Addr{netip.MustParseAddr("10.212.0.53"), netip.MustParseAddr("10.212.1.53")}

// dualDNS is the dual-stack namespace with resolv.conf's nameservers that the *-dns-dual recordings ran in.
var dualDNS = Env{HasIPv6: true, Nameservers: istioNameservers}

var bothFamilies = []Family{IPv4, IPv6}

// withIDs gives the proxy's IDs as Istio's -u and -g lists do.
func withIDs(uids, gids []uint32) func(*Defaults) {
	return func(d *Defaults) { d.ProxyUIDs, d.ProxyGIDs = uids, gids }
}

func parityCases() []parityCase {
	ids := withIDs([]uint32{1337, 2000, 2001}, []uint32{1337, 3000})
	groups := []string{"java", "202"}
	exclude := []string{"888", "ftp"}
	return []parityCase{
		{capture: "default"},
		{capture: "dns", spec: Spec{DNSCapture: true}, env: Env{Nameservers: istioNameservers}},
		{capture: "dnsall", spec: Spec{DNSCapture: true, CaptureAllDNS: true}, env: Env{Nameservers: istioNameservers}},
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
			env: dualDNS, fams: bothFamilies},
		{capture: "uids", defaults: ids},
		{capture: "uids-dns-dual", defaults: ids, spec: Spec{DNSCapture: true}, env: dualDNS, fams: bothFamilies},
		{capture: "uids-tproxy", defaults: withIDs([]uint32{1337, 2000}, []uint32{1337, 3000}), spec: Spec{InterceptionMode: "TPROXY"}},
		{capture: "groups", spec: Spec{IncludeOutboundOwnerGroups: groups}},
		{capture: "groups-dns-dual", spec: Spec{IncludeOutboundOwnerGroups: groups, DNSCapture: true}, env: dualDNS, fams: bothFamilies},
		{capture: "groups-exclude", spec: Spec{ExcludeOutboundOwnerGroups: exclude}},
		{capture: "groups-exclude-dns-dual", spec: Spec{ExcludeOutboundOwnerGroups: exclude, DNSCapture: true}, env: dualDNS, fams: bothFamilies},
		{capture: "groups-none", spec: Spec{IncludeOutboundOwnerGroups: []string{}}},
		{capture: "groups-48", spec: Spec{IncludeOutboundOwnerGroups: gidList(48)}},
		{capture: "loopback", spec: Spec{OutboundIPv4LoopbackCIDR: "127.0.0.1/8"}},
		{capture: "loopback-dns-dual", spec: Spec{OutboundIPv4LoopbackCIDR: "127.0.0.1/8", DNSCapture: true}, env: dualDNS, fams: bothFamilies},
		{capture: "loopback-tproxy", spec: Spec{OutboundIPv4LoopbackCIDR: "127.0.0.0/16", InterceptionMode: "TPROXY"}},
		{capture: "all-dns-dual", defaults: ids, env: dualDNS, fams: bothFamilies, spec: Spec{
			ExcludeOutboundOwnerGroups: []string{"ftp"}, OutboundIPv4LoopbackCIDR: "127.0.0.0/8", DNSCapture: true,
		}},
	}
}

// gidList is "1" to "n", as the recordings' seq -s, 1 n.
func gidList(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = itoa(uint16(i + 1))
	}
	return out
}

// TestIstioParity compares our rulesets, rule by rule and chain by chain, with what the real
// `pilot-agent istio-iptables` left in iptables-save for the same settings. Our comment match is the only
// difference allowed: rules are rendered without it here.
func TestIstioParity(t *testing.T) {
	for _, c := range parityCases() {
		t.Run(c.capture, func(t *testing.T) {
			env := c.env
			env.GroupIDs = recordingGroups
			rs := buildCase(t, goldenCase{name: c.capture, spec: c.spec, env: env, defaults: c.defaults})
			fams := c.fams
			if fams == nil {
				fams = []Family{IPv4}
			}
			for _, f := range fams {
				compareWithRecording(t, rs, f, c.capture)
			}
		})
	}
}

func compareWithRecording(t *testing.T, rs Ruleset, f Family, capture string) {
	t.Helper()
	ext := ".v4.save"
	if f == IPv6 {
		ext = ".v6.save"
	}
	raw, err := os.ReadFile(filepath.Join("testdata", "istio", capture+ext))
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
