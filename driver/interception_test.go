package driver

import (
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/nomad/nomad/structs"
	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/istio-sidecar/istio-sidecar/driver/rules"
)

// The interception keys sit at the top level of the jobspec's block and reach rules.Spec through Nomad's
// schema and msgpack, nil where absent (which the rules read as Istio's "*").
func TestTaskConfig_InterceptionKeysDecode(t *testing.T) {
	tc, err := decodeTask(t, `
include_inbound_ports      = ["8080", "9090"]
exclude_outbound_ip_ranges = ["10.0.0.0/8"]
exclude_outbound_ports     = ["5432"]
exclude_interfaces         = ["eth1"]
interception_mode          = "REDIRECT"
dns_capture                = true
`)
	if err != nil {
		t.Fatal(err)
	}
	want := rules.Spec{
		IncludeInboundPorts:     []string{"8080", "9090"},
		ExcludeOutboundIPRanges: []string{"10.0.0.0/8"},
		ExcludeOutboundPorts:    []string{"5432"},
		ExcludeInterfaces:       []string{"eth1"},
		InterceptionMode:        "REDIRECT",
		DNSCapture:              true,
	}
	got := tc.Spec
	if !slices.Equal(got.IncludeInboundPorts, want.IncludeInboundPorts) || !slices.Equal(got.ExcludeOutboundIPRanges, want.ExcludeOutboundIPRanges) ||
		!slices.Equal(got.ExcludeOutboundPorts, want.ExcludeOutboundPorts) || !slices.Equal(got.ExcludeInterfaces, want.ExcludeInterfaces) ||
		got.InterceptionMode != want.InterceptionMode || !got.DNSCapture {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if got.IncludeOutboundIPRanges != nil {
		t.Fatalf("an absent include list must stay nil (Istio's \"*\"), got %#v", got.IncludeOutboundIPRanges)
	}
}

func TestMergeSpec_TaskKeysReplaceFleetKeys(t *testing.T) {
	fleet := rules.Spec{ExcludeOutboundIPRanges: []string{"169.254.169.254/32"}, ExcludeOutboundPorts: []string{"25"}, DNSCapture: true}
	task := rules.Spec{ExcludeOutboundPorts: []string{"5432"}}
	got := mergeSpec(fleet, task)
	if !slices.Equal(got.ExcludeOutboundIPRanges, []string{"169.254.169.254/32"}) || !slices.Equal(got.ExcludeOutboundPorts, []string{"5432"}) || !got.DNSCapture {
		t.Fatalf("got %+v", got)
	}
}

func TestHostSafety_ExcludesAgentPortsBothWaysWhenInboundIsEverything(t *testing.T) {
	got, err := withHostSafety(rules.Spec{ExcludeOutboundPorts: []string{"5432"}}, []string{"22", "4647"})
	if err != nil || !slices.Equal(got.ExcludeOutboundPorts, []string{"5432", "22", "4647"}) || !slices.Equal(got.ExcludeInboundPorts, []string{"22", "4647"}) {
		t.Fatalf("got %+v", got)
	}
	// An explicit inbound list already leaves those ports out; adding excludes to it would be an error.
	got, err = withHostSafety(rules.Spec{IncludeInboundPorts: []string{"8080"}}, []string{"22"})
	if err != nil || got.ExcludeInboundPorts != nil {
		t.Fatalf("inbound excludes added next to an include list: %+v %v", got, err)
	}
	// A job may not capture the host's own ports inbound.
	_, err = withHostSafety(rules.Spec{IncludeInboundPorts: []string{"8080", "22"}}, []string{"22"})
	if err == nil || !strings.Contains(err.Error(), `include_inbound_ports[1]: "22"`) {
		t.Fatalf("got %v", err)
	}
}

func TestRuleset_BadInterceptionFieldNamesKeyAndValue(t *testing.T) {
	d := New(t.Context(), testLogger(t))
	for _, tc := range []struct {
		spec rules.Spec
		want string
	}{
		{rules.Spec{ExcludeOutboundIPRanges: []string{"10.0.0.0/33"}}, `exclude_outbound_ip_ranges[0]`},
		{rules.Spec{IncludeInboundPorts: []string{"http"}}, `include_inbound_ports[0]`},
		{rules.Spec{ExcludeInterfaces: []string{"eth0; iptables -F"}}, `exclude_interfaces[0]`},
		{rules.Spec{InterceptionMode: "tproxy"}, `interception_mode: "tproxy"`},
	} {
		_, err := interceptionInputs{Spec: tc.spec}.ruleset(d.settings, "5f0c7a0e-1d2b-4c3a-8e9f-0a1b2c3d4e5f")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want %q", tc.spec, err, tc.want)
		}
	}
}

// TPROXY's proxy keeps CAP_NET_RAW, which in host mode would act on the host's own network.
func TestInterceptionSpec_TProxyIsForGroupModeOnly(t *testing.T) {
	d := New(t.Context(), testLogger(t))
	tc := TaskConfig{Spec: rules.Spec{InterceptionMode: "TPROXY"}}
	if _, err := planInterception(d.settings, tc, placement{host: true}); err == nil || !strings.Contains(err.Error(), `interception_mode: "TPROXY" is for bridge and CNI networking only`) {
		t.Fatalf("host mode: got %v", err)
	}
	plan, err := planInterception(d.settings, tc, placement{netns: "/var/run/netns/group"})
	spec := plan.spec
	if err != nil || strings.Join(proxyCaps(spec), ",") != "net_raw" {
		t.Fatalf("group mode: %v %v", proxyCaps(spec), err)
	}
	if caps := proxyCaps(rules.Spec{}); caps != nil {
		t.Fatalf("REDIRECT keeps no capability, got %v", caps)
	}
}

func TestHostModePorts_MustBeReservedStatically(t *testing.T) {
	cfg := &drivers.TaskConfig{Resources: &drivers.Resources{Ports: &structs.AllocatedPorts{{Label: "istio-outbound", Value: 15001}}}}
	err := checkHostModePorts(cfg, 15001, 15006)
	if err == nil || !strings.Contains(err.Error(), "missing [15006]") {
		t.Fatalf("got %v, want the missing port named", err)
	}
	*cfg.Resources.Ports = append(*cfg.Resources.Ports, structs.AllocatedPortMapping{Label: "istio-inbound", Value: 15006})
	if err := checkHostModePorts(cfg, 15001, 15006); err != nil {
		t.Fatal(err)
	}
	if err := checkHostModePorts(&drivers.TaskConfig{}, 15001); err == nil {
		t.Fatal("no ports at all must be refused")
	}
}

func TestPluginConfig_InterceptionDefaultsAreChecked(t *testing.T) {
	c := defaultConfig()
	c.Interception.ExcludeOutboundIPRanges = []string{"nope"}
	if _, err := c.validate(); err == nil || !strings.Contains(err.Error(), "interception: exclude_outbound_ip_ranges[0]") {
		t.Fatalf("got %v", err)
	}
	c = defaultConfig()
	c.HostExcludePorts = []string{"ssh"}
	if _, err := c.validate(); err == nil || !strings.Contains(err.Error(), "host_exclude_ports") {
		t.Fatalf("got %v", err)
	}
	c = defaultConfig()
	c.DriftCheckInterval = "-1s"
	if _, err := c.validate(); err == nil || !strings.Contains(err.Error(), `drift_check_interval: "-1s"`) {
		t.Fatalf("got %v", err)
	}
}

// Ports are compared as numbers: "022" is port 22, and a job may not capture it inbound in host mode any more
// than "22". The operator's list is compared the same way.
func TestHostSafety_ComparesParsedPorts(t *testing.T) {
	for _, tc := range []struct {
		include, host []string
		want          string
	}{
		{[]string{"022", "04647"}, []string{"22", "4647"}, `include_inbound_ports[0]: "022" is port 22, one of the host's own ports`},
		{[]string{"8080", "4647"}, []string{"022", "04647"}, `include_inbound_ports[1]: "4647" is port 4647, one of the host's own ports`},
	} {
		_, err := withHostSafety(rules.Spec{IncludeInboundPorts: tc.include}, tc.host)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("include %v, host %v: got %v, want %q", tc.include, tc.host, err, tc.want)
		}
	}
	// Through the driver's whole path: the CLI's host mode refuses it too, and the payload never has it.
	for _, body := range []string{`include_inbound_ports = ["022", "04647"]`, `include_inbound_ports = ["0000022"]`} {
		if _, err := OperatorRuleset(body, OperatorOptions{AllocID: "a1", Host: true}); err == nil {
			t.Errorf("%s: accepted in host mode", body)
		}
	}
	// The ports the plan adds are canonical numbers, whatever the operator wrote.
	got, err := withHostSafety(rules.Spec{}, []string{"022"})
	if err != nil || !slices.Equal(got.ExcludeOutboundPorts, []string{"22"}) || !slices.Equal(got.ExcludeInboundPorts, []string{"22"}) {
		t.Fatalf("got %+v %v", got, err)
	}
}
