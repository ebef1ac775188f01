package rules

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// refusalCase is a setting we refuse, and what Istio's own tool did with it (testdata/istio): most it refuses
// too (NAME.refused: its exit status and error); a few it applies (NAME.v4.save), which we refuse on purpose.
type refusalCase struct {
	capture  string
	spec     Spec
	defaults func(*Defaults)
	// istioSays is part of Istio's error, or for a setting Istio applies, part of what it installed.
	istioSays string
	want      string // part of our error, which names the field and value
}

func refusalCases() []refusalCase {
	tooMany := `include_outbound_owner_groups: "%d groups" exceeds 48 groups`
	notLoopback := `outbound_ipv4_loopback_cidr: "%s" is not an IPv4 loopback CIDR`
	return []refusalCase{
		{capture: "refuse-groups-65", spec: Spec{IncludeOutboundOwnerGroups: gidList(65)},
			istioSays: "cannot exceed 64, got 65", want: sprintf(tooMany, 65)},
		// Istio lets 50 to 64 groups through its own check, then iptables-restore refuses the rule.
		{capture: "refuse-groups-50", spec: Spec{IncludeOutboundOwnerGroups: gidList(50)},
			istioSays: "Parser cannot handle more arguments", want: sprintf(tooMany, 50)},
		// 49 fit Istio's untagged rule, not ours: our comment takes the words of one more group.
		{capture: "groups-49", spec: Spec{IncludeOutboundOwnerGroups: gidList(49)},
			istioSays: "--gid-owner 48 -m owner ! --gid-owner 49 -j RETURN", want: sprintf(tooMany, 49)},
		{capture: "refuse-groups-unknown", spec: Spec{IncludeOutboundOwnerGroups: []string{"java", "nosuchgroup"}},
			istioSays: `Bad value for "--gid-owner" option: "nosuchgroup"`,
			want:      `include_outbound_owner_groups[1]: "nosuchgroup" is not a group on this host`},
		{capture: "refuse-groups-exclude-unknown", spec: Spec{ExcludeOutboundOwnerGroups: []string{"nosuchgroup"}},
			istioSays: `Bad value for "--gid-owner" option: "nosuchgroup"`,
			want:      `exclude_outbound_owner_groups[0]: "nosuchgroup" is not a group on this host`},
		{capture: "refuse-groups-exclude-wildcard", spec: Spec{ExcludeOutboundOwnerGroups: []string{"*"}},
			istioSays: `Bad value for "--gid-owner" option: "*"`,
			want:      `exclude_outbound_owner_groups[0]: "*" is not a group name or GID`},
		// Istio ignores the exclude list next to an include list: only java's traffic is captured, ftp's too.
		{capture: "groups-both", spec: Spec{IncludeOutboundOwnerGroups: []string{"java"}, ExcludeOutboundOwnerGroups: []string{"ftp"}},
			istioSays: "-A ISTIO_OUTPUT -m owner ! --gid-owner 2001 -j RETURN",
			want:      `exclude_outbound_owner_groups: "ftp" only applies when include_outbound_owner_groups is "*"`},
		// iptables reads "0202" as octal: Istio captures GID 130's traffic, not 202's.
		{capture: "groups-octal", spec: Spec{IncludeOutboundOwnerGroups: []string{"0202"}},
			istioSays: "! --gid-owner 130 -j RETURN",
			want:      `include_outbound_owner_groups[0]: "0202" has a leading zero`},
		{capture: "refuse-loopback-not-loopback", spec: Spec{OutboundIPv4LoopbackCIDR: "10.0.0.0/8"},
			istioSays: "expected valid IPv4 loopback address", want: sprintf(notLoopback, "10.0.0.0/8")},
		{capture: "refuse-loopback-ipv6", spec: Spec{OutboundIPv4LoopbackCIDR: "::1/128"},
			istioSays: "expected valid IPv4 loopback address", want: sprintf(notLoopback, "::1/128")},
		{capture: "refuse-loopback-mask", spec: Spec{OutboundIPv4LoopbackCIDR: "127.0.0.0/7"},
			istioSays: "to have mask in range [8, 32]",
			want:      `outbound_ipv4_loopback_cidr: "127.0.0.0/7" has a mask outside 8-32 bits`},
		{capture: "refuse-loopback-bare", spec: Spec{OutboundIPv4LoopbackCIDR: "127.0.0.1"},
			istioSays: "no '/'", want: `outbound_ipv4_loopback_cidr: "127.0.0.1" is not a CIDR`},
		{capture: "refuse-uid-max", defaults: withIDs([]uint32{1337, noID}, []uint32{1337}),
			istioSays: `Bad value for "--uid-owner" option: "4294967295"`,
			want:      `defaults.proxy_uids[1]: "4294967295" is (uid_t)-1, which is no ID`},
		{capture: "refuse-gid-max", defaults: withIDs([]uint32{1337}, []uint32{1337, noID}),
			istioSays: `Bad value for "--gid-owner" option: "4294967295"`,
			want:      `defaults.proxy_gids[1]: "4294967295" is (uid_t)-1, which is no ID`},
	}
}

// TestIstioRefusals: every setting recorded as refused by Istio's tool is refused by Parse too, with an error
// naming the field and the value; and where we refuse what Istio applies, the recording shows why.
func TestIstioRefusals(t *testing.T) {
	for _, c := range refusalCases() {
		t.Run(c.capture, func(t *testing.T) {
			istio := readRecording(t, c.capture)
			if !strings.Contains(istio, c.istioSays) {
				t.Errorf("Istio's recording does not say %q:\n%s", c.istioSays, istio)
			}
			d := StandardDefaults()
			if c.defaults != nil {
				c.defaults(&d)
			}
			_, err := Parse(c.spec, d, Env{GroupIDs: recordingGroups})
			var fe *FieldError
			if err == nil || !errors.As(err, &fe) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Parse error %v, want a *FieldError containing %q", err, c.want)
			}
		})
	}
}

// readRecording returns NAME.refused (which must say Istio exited non-zero) or else NAME.v4.save.
func readRecording(t *testing.T, name string) string {
	t.Helper()
	dir := filepath.Join("testdata", "istio")
	if raw, err := os.ReadFile(filepath.Join(dir, name+".refused")); err == nil {
		if !strings.HasPrefix(string(raw), "exit ") || strings.HasPrefix(string(raw), "exit 0") {
			t.Fatalf("%s.refused does not record a failed run:\n%s", name, raw)
		}
		return string(raw)
	}
	raw, err := os.ReadFile(filepath.Join(dir, name+".v4.save"))
	if err != nil {
		t.Fatalf("no recording for %s: %v", name, err)
	}
	return string(raw)
}

// TestEveryRecordingIsChecked: a recording no test reads proves nothing.
func TestEveryRecordingIsChecked(t *testing.T) {
	checked := map[string]bool{}
	for _, c := range parityCases() {
		checked[c.capture] = true
	}
	for _, c := range refusalCases() {
		checked[c.capture] = true
	}
	files, err := filepath.Glob(filepath.Join("testdata", "istio", "*.*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		base := filepath.Base(f)
		if base == "README.md" || base == "capture.sh" {
			continue
		}
		name := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(base, ".refused"), ".v4.save"), ".v6.save")
		if !checked[name] {
			t.Errorf("%s: no parity or refusal case reads it", f)
		}
	}
}

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }
