package driver

import (
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/nomad/nomad/structs"
	"github.com/hashicorp/nomad/plugins/drivers"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/istio-sidecar/istio-sidecar/driver/istio"
	"github.com/istio-sidecar/istio-sidecar/driver/proxy"
	"github.com/istio-sidecar/istio-sidecar/driver/rules"
	"github.com/istio-sidecar/istio-sidecar/driver/runas"
)

// FuzzTaskConfig runs the whole start plan over any jobspec config block and task env: HCL body, Nomad's
// encoding, validation, the interception plan, the ruleset, pilot-agent's environment, PROXY_CONFIG and argv.
// Whatever the input, either the start is refused, or: no owned ProxyConfig field or variable holds anything
// but the driver's value, no variable outside the allowed set reaches the proxy, the argv is the driver's, and
// in host mode no packet to a host-excluded port can be captured.
func FuzzTaskConfig(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s.body, s.env, s.host, false)
	}
	s, err := defaultConfig().validate()
	if err != nil {
		f.Fatal(err)
	}
	hostPorts := make([]uint16, len(s.HostExcludePorts))
	for i, v := range s.HostExcludePorts {
		if hostPorts[i], err = rules.ParsePort("host_exclude_ports", i, v); err != nil {
			f.Fatal(err)
		}
	}
	f.Fuzz(func(t *testing.T, body, env string, host, ipv6 bool) {
		cfg := fuzzTask(t, body, env, host)
		if cfg == nil {
			return
		}
		inspect := func(p interceptionPlan) (interceptionInputs, error) {
			return inputs(p.spec, rules.Env{HasIPv6: ipv6, Nameservers: []netip.Addr{netip.MustParseAddr("10.0.0.53")}}), nil
		}
		p, err := planStart(s, cfg, inspect)
		if err != nil {
			return // refused: nothing started
		}
		checkEnv(t, cfg, s, p)
		checkProxyConfig(t, s, p.vars["PROXY_CONFIG"])
		checkArgv(t, s, p)
		if host {
			for _, fr := range p.rs.Families {
				assertPortsNeverCaptured(t, p.rs.Payload(fr.Family), hostPorts)
			}
		}
	})
}

// fuzzTask is a task of a meshed group: in host mode with the capture ports reserved, else in a group
// namespace; its env from "NAME=value" lines. nil when the body is not a config block Nomad would encode.
func fuzzTask(t *testing.T, body, env string, host bool) *drivers.TaskConfig {
	cfg := &drivers.TaskConfig{AllocID: "4f1c2d3e-aaaa-bbbb-cccc-000000000000", JobName: "payments", JobID: "payments",
		TaskGroupName: "api", Name: "istio-proxy", Namespace: "default", Env: map[string]string{}}
	for _, line := range strings.Split(env, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && k != "" {
			cfg.Env[k] = v
		}
	}
	if host {
		ports := structs.AllocatedPorts{{Label: "o", Value: istio.OutboundCapturePort}, {Label: "i", Value: istio.InboundCapturePort}}
		cfg.Resources = &drivers.Resources{Ports: &ports}
	} else {
		// An address Nomad gives, so that no namespace is read for INSTANCE_IP.
		cfg.NetworkIsolation = &drivers.NetworkIsolationSpec{Mode: drivers.NetIsolationModeGroup, Path: "/var/run/netns/fuzz",
			HostsConfig: &drivers.HostsConfig{Address: "172.26.64.7"}}
	}
	if err := EncodeTaskConfigHCL(body, cfg); err != nil {
		return nil
	}
	return cfg
}

// checkEnv: a variable the driver owns holds the driver's value or is absent; any other came from the task
// through NOMAD_* or a passthrough prefix.
func checkEnv(t *testing.T, cfg *drivers.TaskConfig, s *settings, p *startPlan) {
	for _, kv := range p.env(cfg, s) {
		name, value, _ := strings.Cut(kv, "=")
		switch {
		case proxy.OwnedVariable(name):
			if want, ok := p.vars[name]; (ok && value != want) || (!ok && name != "PATH") {
				t.Fatalf("owned %s = %q is not the driver's (%q)", name, value, p.vars[name])
			}
		case strings.HasPrefix(name, "NOMAD_") || hasPrefix(name, s.EnvPassthrough):
			if cfg.Env[name] != value {
				t.Fatalf("%s = %q is neither the task's nor the driver's", name, value)
			}
		default:
			t.Fatalf("%s reaches the proxy outside the allowed set", kv)
		}
	}
	for name := range p.vars {
		if !proxy.OwnedVariable(name) {
			t.Fatalf("the driver sets %s, which it does not own", name)
		}
	}
}

// checkProxyConfig: the driver's fields hold its values, and a job's layer (the fleet's is empty here) set
// nothing outside the allow-list.
func checkProxyConfig(t *testing.T, s *settings, doc string) {
	var pc map[string]json.RawMessage
	if err := json.Unmarshal([]byte(doc), &pc); err != nil {
		t.Fatalf("PROXY_CONFIG is not JSON: %v: %s", err, doc)
	}
	want := map[string]string{"binaryPath": `"` + s.EnvoyPath + `"`, "configPath": `"./` + proxy.ConfigDir + `"`,
		"proxyAdminPort": "15000", "statusPort": "15020"}
	for k, v := range want {
		if string(pc[k]) != v {
			t.Fatalf("PROXY_CONFIG %s = %s, want the driver's %s", k, pc[k], v)
		}
	}
	driverSet := []string{"binaryPath", "configPath", "proxyAdminPort", "statusPort", "discoveryAddress",
		"terminationDrainDuration", "concurrency", "interceptionMode"}
	for k := range pc {
		if slices.Contains(driverSet, k) {
			continue
		}
		fd := proxyConfigField(k)
		if fd == nil || !proxy.JobAllowed[fd.Name()] {
			t.Fatalf("PROXY_CONFIG holds %s, which a job may not set: %s", k, doc)
		}
	}
	if strings.Contains(doc, `"tlsSettings"`) {
		t.Fatalf("PROXY_CONFIG holds a job's tracing.tlsSettings: %s", doc)
	}
}

// checkArgv: pilot-agent, as the proxy user, with the driver's arguments and a log level Envoy knows.
func checkArgv(t *testing.T, s *settings, p *startPlan) {
	argv := p.argv("/plugin", s)
	caps := "-"
	if isTProxy(p.interception.spec) {
		caps = "net_raw"
	}
	head := []string{"/plugin", runas.Arg, "1337", "1337", caps, "--", s.PilotAgentPath, "proxy", "sidecar"}
	if !slices.Equal(argv[:len(head)], head) || len(argv) != len(head)+2 ||
		!slices.Contains(proxy.EnvoyLogLevels, strings.TrimPrefix(argv[len(head)], "--proxyLogLevel=")) ||
		argv[len(head)+1] != "--templateFile="+s.BootstrapTemplatePath {
		t.Fatalf("argv %q", argv)
	}
}

func proxyConfigField(jsonName string) protoreflect.FieldDescriptor {
	return proxyConfigDescriptor.Fields().ByJSONName(jsonName)
}

func hasPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
