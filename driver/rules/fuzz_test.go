package rules

import (
	"errors"
	"net/netip"
	"regexp"
	"strings"
	"testing"
)

// FuzzParseBuild feeds arbitrary strings into every Spec field (lists split on ','), the nameservers and the
// alloc ID. Either Parse/Build reject them with a *FieldError / ErrBadOwner, or the payload contains only what
// the driver emits: known tables, our chains, one tagged rule per line, nothing injected.
func FuzzParseBuild(f *testing.F) {
	f.Add("*", "15020", "*", "10.0.0.0/8", "3306", "5432", "eth0", "REDIRECT", "10.0.0.53", testAlloc, uint8(0), "java,202", "127.0.0.1/8")
	f.Add("8080,9090", "", "10.0.0.0/8,fd00::/8", "10.1.0.0/16", "", "", "veth+", "TPROXY", "fd00::53", "a", uint8(7), "0202,*", "127.0.0.0/7")
	f.Add("80\n*nat", "1", "1.2.3.4/33", "*", "0", "65536", "eth0/1", "tproxy", "1.1.1.1%eth0", "x\" -j ACCEPT", uint8(1), "a b,-1", "::1/128")
	f.Add("*,80", "22", "", "::/0", "1,1,1", "53", "a b", "", "", "../x", uint8(3), "*", "127.0.0.1")
	f.Add("", "", "", "", "", "", "", "", "", "", uint8(2), "", "")
	f.Add("1", "", "127.0.0.1", "10.0.0.1/8", "", "", "lo", "REDIRECT", "::ffff:10.0.0.1", "abc\nCOMMIT", uint8(21), "nosuchgroup,4294967295", "10.0.0.0/8")
	f.Fuzz(func(t *testing.T, inPorts, exInPorts, inRanges, exRanges, inOutPorts, exOutPorts, ifaces, mode, ns, alloc string, flags uint8, groups, loopback string) {
		spec := Spec{
			IncludeInboundPorts: split(inPorts), ExcludeInboundPorts: split(exInPorts),
			IncludeOutboundIPRanges: split(inRanges), ExcludeOutboundIPRanges: split(exRanges),
			IncludeOutboundPorts: split(inOutPorts), ExcludeOutboundPorts: split(exOutPorts),
			ExcludeInterfaces: split(ifaces), InterceptionMode: mode,
			DNSCapture: flags&1 != 0, CaptureAllDNS: flags&2 != 0, DropInvalid: flags&4 != 0,
			OutboundIPv4LoopbackCIDR: loopback,
		}
		if flags&16 != 0 {
			spec.IncludeOutboundOwnerGroups = split(groups)
		} else {
			spec.ExcludeOutboundOwnerGroups = split(groups)
		}
		env := Env{HasIPv6: flags&8 != 0, GroupIDs: map[string]uint32{"java": 2001}}
		for _, s := range split(ns) {
			if a, err := netip.ParseAddr(s); err == nil {
				env.Nameservers = append(env.Nameservers, a)
			}
		}
		cfg, err := Parse(spec, StandardDefaults(), env)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field == "" {
				t.Fatalf("Parse error is not a *FieldError naming a field: %v", err)
			}
			return
		}
		rs, err := Build(cfg, Owner{AllocID: alloc})
		if err != nil {
			if !errors.Is(err, ErrBadOwner) {
				t.Fatalf("Build: unexpected error %v", err)
			}
			return
		}
		for _, fr := range rs.Families {
			checkPayload(t, rs.Payload(fr.Family), alloc, fr.RuleCount())
		}
	})
}

// split turns one fuzz string into a list; "" is an absent (nil) list.
func split(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

var (
	chainDecl = regexp.MustCompile(`^:(ISTIO_[A-Z_]+) - \[0:0\]$`)
	// A rule: "-A CHAIN", then only tokens made of safe characters, our comment exactly once, then a target.
	ruleLine = regexp.MustCompile(`^-A (PREROUTING|OUTPUT|ISTIO_[A-Z_]+) ((?:! )?(?:-[a-z]|--[a-z-]+) [A-Za-z0-9.:/,+_-]+ )*` +
		`-m comment --comment "istio-sidecar:alloc=([A-Za-z0-9._-]+)" -j [A-Z_]+(?: --[a-z-]+ [A-Za-z0-9.:/]+| --[a-z-]+)*$`)
)

func checkPayload(t *testing.T, payload, alloc string, wantRules int) {
	t.Helper()
	if !strings.HasSuffix(payload, "COMMIT\n") {
		t.Fatalf("payload does not end with COMMIT:\n%s", payload)
	}
	inTable, rules := false, 0
	for _, line := range strings.Split(strings.TrimSuffix(payload, "\n"), "\n") {
		switch {
		case line == "*nat" || line == "*mangle" || line == "*raw":
			if inTable {
				t.Fatalf("table opened twice: %q", line)
			}
			inTable = true
		case line == "COMMIT":
			inTable = false
		case !inTable:
			t.Fatalf("line outside a table: %q", line)
		case chainDecl.MatchString(line):
			if m := chainDecl.FindStringSubmatch(line); !isOwnChain(chain(m[1])) {
				t.Fatalf("declares a chain that is not ours: %q", line)
			}
		case ruleLine.MatchString(line):
			m := ruleLine.FindStringSubmatch(line)
			if !isOwnChain(chain(m[1])) && m[1] != "PREROUTING" && m[1] != "OUTPUT" {
				t.Fatalf("appends to a foreign chain: %q", line)
			}
			if m[3] != alloc || strings.Count(line, "--comment") != 1 {
				t.Fatalf("rule not tagged with exactly our alloc %q: %q", alloc, line)
			}
			rules++
		default:
			t.Fatalf("unexpected payload line %q", line)
		}
	}
	if rules != wantRules {
		t.Fatalf("payload has %d rules, ruleset %d", rules, wantRules)
	}
	// Round trip: every rule must be found again as ours by the save parser.
	saved, err := ParseSave(payload)
	if err != nil {
		t.Fatalf("payload does not parse as save output: %v", err)
	}
	if got := len(saved.Present(Owner{AllocID: alloc}).rules); got != wantRules {
		t.Fatalf("save parser finds %d of our %d rules", got, wantRules)
	}
}
