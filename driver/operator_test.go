package driver

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/istio-sidecar/istio-sidecar/driver/rules"
)

// TestOperatorRulesetDefaults: an empty block is every default, built as StartTask builds it (group namespace,
// IPv4 only, no host-safety ports).
func TestOperatorRulesetDefaults(t *testing.T) {
	got, err := OperatorRuleset("", OperatorOptions{AllocID: OperatorPlaceholderAllocID})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := rules.Parse(rules.Spec{}, rules.StandardDefaults(), rules.Env{})
	if err != nil {
		t.Fatal(err)
	}
	want, err := rules.Build(cfg, rules.Owner{AllocID: OperatorPlaceholderAllocID})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Families) != 1 || got.Payload(rules.IPv4) != want.Payload(rules.IPv4) {
		t.Errorf("defaults differ:\n%s\nwant\n%s", got.Payload(rules.IPv4), want.Payload(rules.IPv4))
	}
}

// TestOperatorRulesetHostMode: host mode adds exactly the driver's host-safety ports, both ways.
func TestOperatorRulesetHostMode(t *testing.T) {
	rs, err := OperatorRuleset(`include_outbound_ip_ranges = ["10.0.0.0/8"]`, OperatorOptions{AllocID: "a1", Host: true})
	if err != nil {
		t.Fatal(err)
	}
	p := rs.Payload(rules.IPv4)
	for _, port := range defaultHostExcludePorts {
		for _, chain := range []string{"ISTIO_INBOUND -p tcp -m tcp --dport " + port + " ", "ISTIO_OUTPUT -p udp -m udp --dport " + port + " "} {
			if !strings.Contains(p, "-A "+chain) {
				t.Errorf("host mode lacks %q", chain)
			}
		}
	}
	group, err := OperatorRuleset(`include_outbound_ip_ranges = ["10.0.0.0/8"]`, OperatorOptions{AllocID: "a1"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(group.Payload(rules.IPv4), "--dport 4646") {
		t.Error("group mode has host-safety ports")
	}
}

func TestOperatorRulesetErrors(t *testing.T) {
	cases := []struct {
		name, body string
		opts       OperatorOptions
		want       string
	}{
		{"bad CIDR", `exclude_outbound_ip_ranges = ["10.0.0.0/33"]`, OperatorOptions{AllocID: "a"}, `exclude_outbound_ip_ranges[0]: "10.0.0.0/33"`},
		{"bad port", `exclude_inbound_ports = ["http"]`, OperatorOptions{AllocID: "a"}, `exclude_inbound_ports[0]: "http"`},
		{"non-interception field", `log_level = "loud"`, OperatorOptions{AllocID: "a"}, `log_level: "loud"`},
		{"unknown key", `no_such_key = 1`, OperatorOptions{AllocID: "a"}, `no_such_key`},
		{"HCL syntax", `dns_capture = `, OperatorOptions{AllocID: "a"}, `parsing the config block`},
		{"TPROXY refused in host mode as StartTask refuses it", `interception_mode = "TPROXY"`, OperatorOptions{AllocID: "a", Host: true}, `interception_mode: "TPROXY" is for bridge and CNI networking only`},
		{"bad alloc ID", ``, OperatorOptions{AllocID: "a b"}, `invalid alloc ID "a b"`},
		{"host and netns", ``, OperatorOptions{AllocID: "a", Host: true, NetnsPath: "/var/run/netns/x"}, `exclusive`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := OperatorRuleset(c.body, c.opts)
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("got %v (%T), want a *ConfigError", err, err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %q, want it to name %q", err, c.want)
			}
		})
	}
}

// TestOperatorRulesetMissingNetns: a namespace that cannot be inspected is an operation failure, not a
// config error.
func TestOperatorRulesetMissingNetns(t *testing.T) {
	_, err := OperatorRuleset("", OperatorOptions{AllocID: "a", NetnsPath: "/nonexistent/netns"})
	var ce *ConfigError
	if err == nil || errors.As(err, &ce) {
		t.Fatalf("got %v, want an inspection error", err)
	}
}

// TestOperatorRulesetAssumedEnv: the dry run without a namespace equals the ruleset for a real group namespace
// without IPv6 (this one, inspected through its /proc path), DNS capture included.
func TestOperatorRulesetAssumedEnv(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to enter a namespace by path")
	}
	body := `dns_capture = true
exclude_outbound_ports = ["5432"]`
	dry, err := OperatorRuleset(body, OperatorOptions{AllocID: "a"})
	if err != nil {
		t.Fatal(err)
	}
	inspected, err := OperatorRuleset(body, OperatorOptions{AllocID: "a", NetnsPath: "/proc/self/ns/net"})
	if err != nil {
		t.Fatal(err)
	}
	if len(dry.Families) != 1 || dry.Payload(rules.IPv4) != inspected.Payload(rules.IPv4) {
		t.Errorf("dry run differs from the inspected group namespace:\n%s\nwant\n%s", dry.Payload(rules.IPv4), inspected.Payload(rules.IPv4))
	}
}
