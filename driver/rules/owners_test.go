package rules

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func TestOwnerGroupAndLoopbackErrors(t *testing.T) {
	cases := []struct {
		name string
		spec Spec
		want string
	}{
		{"empty group", Spec{ExcludeOutboundOwnerGroups: []string{"java", ""}}, `exclude_outbound_owner_groups[1]: "" is empty`},
		{"gid too big", Spec{IncludeOutboundOwnerGroups: []string{"4294967296"}}, `include_outbound_owner_groups[0]: "4294967296" is not a GID (0-4294967294)`},
		{"gid negative", Spec{IncludeOutboundOwnerGroups: []string{"-1"}}, `include_outbound_owner_groups[0]: "-1" is not a group name or GID`},
		{"name with space", Spec{ExcludeOutboundOwnerGroups: []string{"a b"}}, `exclude_outbound_owner_groups[0]: "a b" is not a group name or GID`},
		{"name with newline", Spec{ExcludeOutboundOwnerGroups: []string{"java\n-j ACCEPT"}}, `is not a group name or GID`},
		{"gid range", Spec{ExcludeOutboundOwnerGroups: []string{"100-200"}}, `exclude_outbound_owner_groups[0]: "100-200" is not a group on this host`},
		{"wildcard not alone", Spec{IncludeOutboundOwnerGroups: []string{"java", "*"}}, `include_outbound_owner_groups[1]: "*" must be the only value`},
		{"exclude too long", Spec{ExcludeOutboundOwnerGroups: make([]string, maxListLen+1)}, `exclude_outbound_owner_groups: "10001 values" exceeds 10000 values`},
		{"loopback garbage", Spec{OutboundIPv4LoopbackCIDR: "lo"}, `outbound_ipv4_loopback_cidr: "lo" is not a CIDR`},
		{"loopback mapped", Spec{OutboundIPv4LoopbackCIDR: "::ffff:127.0.0.1/104"}, `is not an IPv4 loopback CIDR`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse(c.spec, StandardDefaults(), Env{GroupIDs: recordingGroups})
			var fe *FieldError
			if err == nil || !errors.As(err, &fe) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want a *FieldError containing %q", err, c.want)
			}
		})
	}
}

func TestOwnerGroupsParse(t *testing.T) {
	cases := []struct {
		name   string
		spec   Spec
		except bool
		gids   []uint32
	}{
		{"default captures every group", Spec{}, true, nil},
		{"wildcard with exclusions", Spec{IncludeOutboundOwnerGroups: []string{"*"}, ExcludeOutboundOwnerGroups: []string{"ftp", "0", "2002"}}, true, []uint32{2002, 0}},
		{"names and GIDs, deduplicated by GID", Spec{IncludeOutboundOwnerGroups: []string{"java", "2001", "202"}}, false, []uint32{2001, 202}},
		{"empty include captures no group", Spec{IncludeOutboundOwnerGroups: []string{}}, false, nil},
		{"48 groups fit", Spec{IncludeOutboundOwnerGroups: gidList(48)}, false, nil},
	}
	for _, c := range cases {
		cfg, err := Parse(c.spec, StandardDefaults(), Env{GroupIDs: recordingGroups})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if cfg.groupsExcept != c.except || (c.gids != nil && !reflect.DeepEqual(cfg.groups, c.gids)) {
			t.Errorf("%s: except %v groups %v, want %v %v", c.name, cfg.groupsExcept, cfg.groups, c.except, c.gids)
		}
	}
}

func TestOwnerGroupNames(t *testing.T) {
	got := OwnerGroupNames(Spec{
		IncludeOutboundOwnerGroups: []string{"*"},
		ExcludeOutboundOwnerGroups: []string{"java", "202", "a b", "", "java", "ftp"},
	})
	if want := []string{"java", "ftp"}; !reflect.DeepEqual(got, want) {
		t.Errorf("OwnerGroupNames = %q, want %q (names once, no GIDs, no wildcard, nothing malformed)", got, want)
	}
}

func TestLoopbackCIDRMasked(t *testing.T) {
	cfg, err := Parse(Spec{OutboundIPv4LoopbackCIDR: "127.1.2.3/8"}, StandardDefaults(), Env{})
	if err != nil {
		t.Fatal(err)
	}
	if want := netip.MustParsePrefix("127.0.0.0/8"); cfg.hostLoopback != want {
		t.Errorf("hostLoopback = %s, want %s (host bits cleared, as iptables does)", cfg.hostLoopback, want)
	}
}
