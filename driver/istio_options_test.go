package driver

import (
	"errors"
	"os/user"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/nomad/plugins/base"

	"github.com/istio-sidecar/istio-sidecar/driver/rules"
)

// The extra proxy IDs come from the plugin block and follow the proxy's own, in Istio's -u/-g order.
func TestPluginConfig_ExtraProxyIDs(t *testing.T) {
	c, err := pluginConfigHCL(`
extra_proxy_uids = [2000, 0]
extra_proxy_gids = [3000]
`)
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.validate()
	if err != nil {
		t.Fatal(err)
	}
	d := s.ruleDefaults()
	if !slices.Equal(d.ProxyUIDs, []uint32{1337, 2000, 0}) || !slices.Equal(d.ProxyGIDs, []uint32{1337, 3000}) {
		t.Fatalf("proxy UIDs %v GIDs %v", d.ProxyUIDs, d.ProxyGIDs)
	}
	if d := (&settings{Config: defaultConfig()}).ruleDefaults(); !slices.Equal(d.ProxyUIDs, []uint32{1337}) {
		t.Fatalf("without extra IDs: %v", d.ProxyUIDs)
	}
}

func TestPluginConfig_BadExtraProxyIDsNameFieldAndValue(t *testing.T) {
	cases := []struct{ body, want string }{
		{`extra_proxy_uids = [1337]`, "extra_proxy_uids[0]: 1337 is proxy_uid already"},
		{`extra_proxy_gids = [3000, 3000]`, "extra_proxy_gids[1]: 3000 is listed twice"},
		{`extra_proxy_uids = [-1]`, "extra_proxy_uids[0]: -1 must be between 0 and 4294967294"},
		{`extra_proxy_gids = [4294967295]`, "extra_proxy_gids[0]: 4294967295 must be between 0 and 4294967294"},
		{"proxy_gid = 2000\nextra_proxy_gids = [2000]", "extra_proxy_gids[0]: 2000 is proxy_gid already"},
		{`extra_proxy_uids = ["x"]`, `"extra_proxy_uids": a number is required`},
	}
	for _, c := range cases {
		t.Run(c.want, func(t *testing.T) {
			cfg, err := pluginConfigHCL(c.body)
			if err == nil {
				_, err = cfg.validate()
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
}

// An ID whose traffic escapes capture is the operator's to give: no jobspec key adds one.
func TestTaskConfig_ExtraProxyIDsAreNotJobSettable(t *testing.T) {
	for _, body := range []string{`extra_proxy_uids = [2000]`, `extra_proxy_gids = [2000]`, `proxy_uid = 2000`} {
		if _, err := decodeTask(t, body); err == nil || !strings.Contains(err.Error(), strings.SplitN(body, " ", 2)[0]) {
			t.Errorf("%s: got %v, want the schema to refuse the key", body, err)
		}
	}
}

// The owner-group and loopback keys decode from a jobspec and from the fleet's interception block; an absent
// include list stays nil (every group), an empty one empty (no group).
func TestInterceptionOptions_Decode(t *testing.T) {
	tc, err := decodeTask(t, `
include_outbound_owner_groups = []
outbound_ipv4_loopback_cidr   = "127.0.0.0/8"
`)
	if err != nil {
		t.Fatal(err)
	}
	if tc.IncludeOutboundOwnerGroups == nil || len(tc.IncludeOutboundOwnerGroups) != 0 || tc.ExcludeOutboundOwnerGroups != nil ||
		tc.OutboundIPv4LoopbackCIDR != "127.0.0.0/8" {
		t.Fatalf("got %#v", tc.Spec)
	}
	c, err := pluginConfigHCL("interception {\n  exclude_outbound_owner_groups = [\"ftp\", \"202\"]\n}\n")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Interception.ExcludeOutboundOwnerGroups, []string{"ftp", "202"}) || c.Interception.IncludeOutboundOwnerGroups != nil {
		t.Fatalf("fleet block: %#v", c.Interception)
	}
}

// The two owner-group lists are one filter: a job that sets either replaces the fleet's whole.
func TestMergeSpec_OwnerGroupsAndLoopback(t *testing.T) {
	fleet := rules.Spec{ExcludeOutboundOwnerGroups: []string{"ftp"}, OutboundIPv4LoopbackCIDR: "127.0.0.0/8"}
	got := mergeSpec(fleet, rules.Spec{IncludeOutboundOwnerGroups: []string{"java"}})
	if !slices.Equal(got.IncludeOutboundOwnerGroups, []string{"java"}) || got.ExcludeOutboundOwnerGroups != nil || got.OutboundIPv4LoopbackCIDR != "127.0.0.0/8" {
		t.Fatalf("job include over fleet exclude: %+v", got)
	}
	got = mergeSpec(fleet, rules.Spec{OutboundIPv4LoopbackCIDR: "127.0.0.1/32"})
	if !slices.Equal(got.ExcludeOutboundOwnerGroups, []string{"ftp"}) || got.OutboundIPv4LoopbackCIDR != "127.0.0.1/32" {
		t.Fatalf("job loopback over fleet's, fleet filter kept: %+v", got)
	}
	got = mergeSpec(rules.Spec{IncludeOutboundOwnerGroups: []string{"java"}}, rules.Spec{IncludeOutboundOwnerGroups: []string{}})
	if got.IncludeOutboundOwnerGroups == nil || len(got.IncludeOutboundOwnerGroups) != 0 {
		t.Fatalf("a job's empty include list must replace the fleet's: %+v", got)
	}
}

// Group names resolve on the host when the task starts, and the GIDs are what the ruleset and the persisted
// state carry; a name the host does not know fails naming the field and value.
func TestInspect_ResolvesOwnerGroupNames(t *testing.T) {
	root, err := user.LookupGroupId("0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := defaultConfig().validate()
	if err != nil {
		t.Fatal(err)
	}
	plan, err := planInterception(s, TaskConfig{Spec: rules.Spec{ExcludeOutboundOwnerGroups: []string{root.Name, "202"}}}, placement{})
	if err != nil {
		t.Fatal(err)
	}
	in, err := plan.inspect()
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]uint32{root.Name: 0}; !reflect.DeepEqual(in.GroupIDs, want) {
		t.Fatalf("GroupIDs %v, want %v", in.GroupIDs, want)
	}
	var raw []byte
	if err := base.MsgPackEncode(&raw, &TaskState{Interception: in}); err != nil {
		t.Fatal(err)
	}
	var st TaskState
	if err := base.MsgPackDecode(raw, &st); err != nil || !reflect.DeepEqual(st.Interception.GroupIDs, in.GroupIDs) {
		t.Fatalf("GroupIDs after the driver state round trip: %v %v", st.Interception.GroupIDs, err)
	}
	rs, err := st.Interception.ruleset(s, "a1")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"-A ISTIO_OUTPUT -m owner --gid-owner 0 ", "-A ISTIO_OUTPUT -m owner --gid-owner 202 "} {
		if !strings.Contains(rs.Payload(rules.IPv4), want) {
			t.Errorf("payload lacks %q", want)
		}
	}
	in.Spec.ExcludeOutboundOwnerGroups = []string{"isc-no-such-group"}
	if _, err := in.ruleset(s, "a1"); err == nil || !strings.Contains(err.Error(), `exclude_outbound_owner_groups[0]: "isc-no-such-group" is not a group on this host`) {
		t.Fatalf("unknown group: got %v", err)
	}
}

// The fleet's group names are checked for form at SetConfig and looked up where a task starts; a bad loopback
// CIDR in the fleet's block is refused at SetConfig.
func TestPluginConfig_InterceptionOptionsChecked(t *testing.T) {
	c := defaultConfig()
	c.Interception.IncludeOutboundOwnerGroups = []string{"isc-not-on-this-host"}
	if _, err := c.validate(); err != nil {
		t.Fatalf("a well-formed group name must pass SetConfig: %v", err)
	}
	for _, tc := range []struct {
		spec rules.Spec
		want string
	}{
		{rules.Spec{IncludeOutboundOwnerGroups: []string{"a b"}}, `interception: include_outbound_owner_groups[0]: "a b" is not a group name or GID`},
		{rules.Spec{IncludeOutboundOwnerGroups: []string{"java"}, ExcludeOutboundOwnerGroups: []string{"ftp"}}, `exclude_outbound_owner_groups: "ftp" only applies`},
		{rules.Spec{OutboundIPv4LoopbackCIDR: "10.0.0.0/8"}, `interception: outbound_ipv4_loopback_cidr: "10.0.0.0/8" is not an IPv4 loopback CIDR`},
	} {
		c := defaultConfig()
		c.Interception = tc.spec
		var fe *rules.FieldError
		if _, err := c.validate(); err == nil || !errors.As(err, &fe) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v, want %q", err, tc.want)
		}
	}
}

// The operator CLI shows the rules of the plugin config it is given: the extra IDs, the fleet's block.
func TestOperatorRulesetPluginConfig(t *testing.T) {
	pc := "extra_proxy_uids = [2000]\ninterception {\n  exclude_outbound_owner_groups = [\"202\"]\n}\n"
	rs, err := OperatorRuleset(`outbound_ipv4_loopback_cidr = "127.0.0.0/8"`, OperatorOptions{AllocID: "a1", PluginConfig: pc})
	if err != nil {
		t.Fatal(err)
	}
	p := rs.Payload(rules.IPv4)
	for _, want := range []string{"-A ISTIO_OUTPUT -m owner --uid-owner 2000 ", "-A ISTIO_OUTPUT -m owner --gid-owner 202 ", "-A ISTIO_OUTPUT -d 127.0.0.0/8 "} {
		if !strings.Contains(p, want) {
			t.Errorf("payload lacks %q:\n%s", want, p)
		}
	}
	_, err = OperatorRuleset("", OperatorOptions{AllocID: "a1", PluginConfig: "extra_proxy_uids = [1337]"})
	var ce *ConfigError
	if !errors.As(err, &ce) || !ce.Plugin || !strings.Contains(err.Error(), "plugin config: extra_proxy_uids[0]: 1337") {
		t.Fatalf("got %v, want a plugin ConfigError naming the field", err)
	}
	_, err = OperatorRuleset("", OperatorOptions{AllocID: "a1", PluginConfig: "no_such = 1"})
	if !errors.As(err, &ce) || !ce.Plugin || !strings.Contains(err.Error(), "no_such") {
		t.Fatalf("got %v, want the schema to name the unknown key", err)
	}
}
