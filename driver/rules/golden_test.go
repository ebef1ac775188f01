package rules

import (
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/golden")

const testAlloc = "8d4b7e0e-0b49-4a5c-9a3f-2f0c1b2a9e11"

// goldenCase is one row of the option matrix: a Spec plus the namespace it is built for, and what the
// operator changes in the standard defaults, if anything.
type goldenCase struct {
	name     string
	spec     Spec
	env      Env
	defaults func(*Defaults)
}

var twoNameservers = []netip.Addr{netip.MustParseAddr("10.212.0.53"), netip.MustParseAddr("10.212.1.53")}

func manyCIDRs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("10.%d.%d.0/24", 100+i/256, i%256)
	}
	return out
}

func goldenCases() []goldenCase {
	return []goldenCase{
		{name: "defaults"},
		{name: "redirect-include-inbound-ports", spec: Spec{IncludeInboundPorts: []string{"8080", "9090"}}},
		{name: "redirect-exclude-inbound-ports", spec: Spec{IncludeInboundPorts: []string{"*"}, ExcludeInboundPorts: []string{"22", "8443"}}},
		{name: "inbound-none", spec: Spec{IncludeInboundPorts: []string{}}},
		{name: "outbound-include-exclude-cidrs", spec: Spec{
			IncludeOutboundIPRanges: []string{"10.0.0.0/8", "192.168.0.0/16"},
			ExcludeOutboundIPRanges: []string{"10.1.0.0/16", "10.2.3.4"},
		}},
		{name: "outbound-none", spec: Spec{IncludeOutboundIPRanges: []string{}, IncludeOutboundPorts: []string{"3306"}}},
		{name: "exclude-1000-cidrs", spec: Spec{ExcludeOutboundIPRanges: manyCIDRs(1000)}},
		{name: "outbound-ports", spec: Spec{IncludeOutboundPorts: []string{"3306"}, ExcludeOutboundPorts: []string{"5432", "6379"}}},
		{name: "exclude-interfaces", spec: Spec{ExcludeInterfaces: []string{"eth9", "veth+"}}},
		{name: "dns-two-nameservers", spec: Spec{DNSCapture: true}, env: Env{Nameservers: twoNameservers}},
		{name: "dns-capture-all", spec: Spec{DNSCapture: true, CaptureAllDNS: true}},
		{name: "tproxy", spec: Spec{InterceptionMode: "TPROXY", DropInvalid: true, ExcludeInterfaces: []string{"eth9"}}},
		{name: "tproxy-include-ports", spec: Spec{InterceptionMode: "TPROXY", IncludeInboundPorts: []string{"8080"}}},
		{name: "loopback-include", spec: Spec{IncludeOutboundIPRanges: []string{"127.0.0.1/32", "10.0.0.0/8"}}},
		{name: "ipv6", spec: Spec{
			DNSCapture:              true,
			ExcludeOutboundIPRanges: []string{"10.1.0.0/16", "fd00:1::/64"},
			IncludeOutboundIPRanges: []string{"*"},
		}, env: Env{HasIPv6: true, Nameservers: append([]netip.Addr{netip.MustParseAddr("fd00::53")}, twoNameservers...)}},
		{name: "ipv6-tproxy", spec: Spec{InterceptionMode: "TPROXY"}, env: Env{HasIPv6: true}},
		{name: "extra-proxy-ids-dns-ipv6", spec: Spec{DNSCapture: true}, defaults: withIDs([]uint32{1337, 2000}, []uint32{1337, 3000}),
			env: Env{HasIPv6: true, Nameservers: append([]netip.Addr{netip.MustParseAddr("fd00::53")}, twoNameservers...)}},
		{name: "extra-proxy-ids-tproxy", spec: Spec{InterceptionMode: "TPROXY"}, defaults: withIDs([]uint32{1337, 2000}, []uint32{1337, 3000})},
		{name: "owner-groups-include", spec: Spec{IncludeOutboundOwnerGroups: []string{"java", "202"}}, env: Env{GroupIDs: recordingGroups}},
		{name: "owner-groups-exclude-dns-ipv6", spec: Spec{ExcludeOutboundOwnerGroups: []string{"888", "ftp"}, DNSCapture: true},
			env: Env{HasIPv6: true, Nameservers: twoNameservers, GroupIDs: recordingGroups}},
		{name: "owner-groups-none", spec: Spec{IncludeOutboundOwnerGroups: []string{}}},
		{name: "loopback-cidr-tproxy", spec: Spec{OutboundIPv4LoopbackCIDR: "127.0.0.0/8", InterceptionMode: "TPROXY", DNSCapture: true},
			env: Env{Nameservers: twoNameservers}},
	}
}

// buildCase parses and builds a case with the standard defaults.
func buildCase(t testing.TB, c goldenCase) Ruleset {
	t.Helper()
	d := StandardDefaults()
	if c.defaults != nil {
		c.defaults(&d)
	}
	cfg, err := Parse(c.spec, d, c.env)
	if err != nil {
		t.Fatalf("%s: Parse: %v", c.name, err)
	}
	rs, err := Build(cfg, Owner{AllocID: testAlloc})
	if err != nil {
		t.Fatalf("%s: Build: %v", c.name, err)
	}
	return rs
}

func renderAll(rs Ruleset) string {
	var b strings.Builder
	for _, fr := range rs.Families {
		fmt.Fprintf(&b, "# %s: %d rules\n", fr.Family, fr.RuleCount())
		b.WriteString(rs.Payload(fr.Family))
	}
	return b.String()
}

func TestGolden(t *testing.T) {
	for _, c := range goldenCases() {
		t.Run(c.name, func(t *testing.T) {
			got := renderAll(buildCase(t, c))
			path := filepath.Join("testdata", "golden", c.name+".golden")
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./driver/rules -update)", err)
			}
			if got != string(want) {
				t.Errorf("payload differs from %s (run with -update after checking):\n%s", path, firstDiff(string(want), got))
			}
		})
	}
}

func firstDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return fmt.Sprintf("line %d:\n want %q\n  got %q", i+1, wl, gl)
		}
	}
	return "(no line differs)"
}

// TestBuildDeterministic guards the golden files against map-order leaks.
func TestBuildDeterministic(t *testing.T) {
	for _, c := range goldenCases() {
		first := renderAll(buildCase(t, c))
		for i := 0; i < 5; i++ {
			if again := renderAll(buildCase(t, c)); again != first {
				t.Fatalf("%s: payload differs between builds", c.name)
			}
		}
	}
}

// TestEveryChainHasRules matters for cleanup by tag: an empty chain carries no tag and could not be found again.
func TestEveryChainHasRules(t *testing.T) {
	for _, c := range goldenCases() {
		rs := buildCase(t, c)
		for _, fr := range rs.Families {
			for _, tr := range fr.tables {
				for _, ch := range tr.Chains {
					n := 0
					for _, r := range tr.Rules {
						if r.Chain == ch {
							n++
						}
					}
					if n == 0 {
						t.Errorf("%s %s %s: chain %s declared without rules", c.name, fr.Family, tr.Table, ch)
					}
				}
			}
		}
	}
}
