package driver

import (
	"strings"
	"testing"

	"github.com/hashicorp/nomad/plugins/base"
	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/istio-sidecar/istio-sidecar/driver/proxy"
)

func TestPluginConfig_DefaultsAreValid(t *testing.T) {
	s, err := defaultConfig().validate()
	if err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if s.readinessTimeout.String() != "1m0s" || s.ProxyUID != 1337 || s.PilotAgentPath != "/usr/local/bin/pilot-agent" {
		t.Fatalf("unexpected defaults: %+v", s)
	}
}

func TestPluginConfig_BadFieldsNameFieldAndValue(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"relative pilot-agent", func(c *Config) { c.PilotAgentPath = "bin/pilot-agent" }, `pilot_agent_path: "bin/pilot-agent"`},
		{"relative envoy", func(c *Config) { c.EnvoyPath = "envoy" }, `envoy_path: "envoy"`},
		{"relative template", func(c *Config) { c.BootstrapTemplatePath = "t.json" }, `bootstrap_template_path: "t.json"`},
		{"relative root cert", func(c *Config) { c.RootCertPath = "root.pem" }, `root_cert_path: "root.pem"`},
		{"root uid", func(c *Config) { c.ProxyUID = 0 }, "proxy_uid: 0"},
		{"huge gid", func(c *Config) { c.ProxyGID = 70000 }, "proxy_gid: 70000"},
		{"discovery without port", func(c *Config) { c.DiscoveryAddress = "istiod" }, `discovery_address: "istiod"`},
		{"discovery bad port", func(c *Config) { c.DiscoveryAddress = "istiod:99999" }, `discovery_address: "istiod:99999"`},
		{"ca bad host", func(c *Config) { c.CAAddress = "bad host:15012" }, `ca_address: "bad host:15012"`},
		{"istiod san", func(c *Config) { c.IstiodSAN = "istiod/nomad" }, `istiod_san: "istiod/nomad"`},
		{"trust domain", func(c *Config) { c.TrustDomain = "cluster local" }, `trust_domain: "cluster local"`},
		{"cluster id newline", func(c *Config) { c.ClusterID = "a\nb" }, `cluster_id: "a\nb"`},
		{"mesh id", func(c *Config) { c.MeshID = "mesh/1" }, `mesh_id: "mesh/1"`},
		{"network", func(c *Config) { c.Network = "net 1" }, `network: "net 1"`},
		{"proxy config not yaml", func(c *Config) { c.ProxyConfig = "[a" }, "proxy_config: not a YAML mapping"},
		{"proxy config owned key", func(c *Config) { c.ProxyConfig = "binaryPath: /bin/sh" }, `proxy_config: binaryPath (binary_path) is set by the driver`},
		{"readiness timeout", func(c *Config) { c.ReadinessTimeout = "soon" }, `readiness_timeout: "soon"`},
		{"readiness timeout zero", func(c *Config) { c.ReadinessTimeout = "0s" }, `readiness_timeout: "0s"`},
		{"workload cert ttl", func(c *Config) { c.WorkloadCertTTL = "1 day" }, `workload_cert_ttl: "1 day"`},
		{"workload cert ttl negative", func(c *Config) { c.WorkloadCertTTL = "-1h" }, `workload_cert_ttl: "-1h"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := defaultConfig()
			tc.mutate(&c)
			_, err := c.validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// SetConfig goes through msgpack as Nomad's does, and must leave the previous settings when it fails.
func TestPluginConfig_SetConfigRejectsAndKeepsPrevious(t *testing.T) {
	d := New(t.Context(), testLogger(t))
	c := defaultConfig()
	c.ProxyUID = 0
	var raw []byte
	if err := base.MsgPackEncode(&raw, &c); err != nil {
		t.Fatal(err)
	}
	err := d.SetConfig(&base.Config{PluginConfig: raw})
	if err == nil || !strings.Contains(err.Error(), "proxy_uid: 0") {
		t.Fatalf("SetConfig: got %v", err)
	}
	if d.settings.ProxyUID != 1337 {
		t.Fatalf("settings changed after a rejected config: %d", d.settings.ProxyUID)
	}
}

func decodeTask(t *testing.T, body string) (TaskConfig, error) {
	t.Helper()
	cfg := &drivers.TaskConfig{}
	if err := EncodeTaskConfigHCL(body, cfg); err != nil {
		return TaskConfig{}, err
	}
	var tc TaskConfig
	if err := cfg.DecodeDriverConfig(&tc); err != nil {
		t.Fatalf("decode: %v", err)
	}
	return tc, nil
}

func TestTaskConfig_DefaultsFromSchema(t *testing.T) {
	tc, err := decodeTask(t, "")
	if err != nil {
		t.Fatal(err)
	}
	s, _ := defaultConfig().validate()
	ts, err := tc.validate(s)
	if err != nil {
		t.Fatalf("an empty config block must be valid: %v", err)
	}
	if ts.ServiceAccount != "default" || ts.LogLevel != "warning" || ts.RootCertPath != "secrets/root-cert.pem" ||
		ts.TokenPath != "secrets/istio-token" || !ts.HoldApplicationUntilProxyStarts || ts.drain.String() != "5s" ||
		ts.readinessTimeout != s.readinessTimeout || ts.CanonicalRevision != "latest" {
		t.Fatalf("unexpected defaults: %+v", ts)
	}
}

func TestTaskConfig_FullBlock(t *testing.T) {
	tc, err := decodeTask(t, `
namespace = "payments"
service_account = "ledger"
canonical_service = "ledger"
canonical_revision = "v2"
labels = { app = "ledger", "topology.istio.io/subzone" = "rack-1" }
instance_ip = "10.0.0.7"
discovery_address = "istiod.example.org:15012"
proxy_config = "tracing:\n  sampling: 10\n"
log_level = "debug"
concurrency = 4
drain_duration = "20s"
exit_on_zero_active_connections = true
hold_application_until_proxy_starts = false
readiness_timeout = "2m"
`)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := defaultConfig().validate()
	ts, err := tc.validate(s)
	if err != nil {
		t.Fatal(err)
	}
	if ts.Labels["topology.istio.io/subzone"] != "rack-1" || ts.Concurrency != 4 || ts.drain.String() != "20s" ||
		ts.readinessTimeout.String() != "2m0s" || ts.HoldApplicationUntilProxyStarts || proxy.MergeProxyConfig(s.proxyConfig, ts.proxyConfig).GetTracing().GetSampling() != 10 {
		t.Fatalf("unexpected: %+v", ts)
	}
}

func TestTaskConfig_BadFieldsNameFieldAndValue(t *testing.T) {
	cases := []struct{ body, want string }{
		{`namespace = "Payments"`, `namespace: "Payments"`},
		{`service_account = "a_b"`, `service_account: "a_b"`},
		{`canonical_service = "-x"`, `canonical_service: "-x"`},
		{`canonical_revision = "v 2"`, `canonical_revision: "v 2"`},
		{`labels = { "bad key!" = "x" }`, `labels: key "bad key!"`},
		{`labels = { app = "has space" }`, `labels["app"]: "has space"`},
		{`instance_ip = "10.0.0.300"`, `instance_ip: "10.0.0.300"`},
		{`discovery_address = "istiod"`, `discovery_address: "istiod"`},
		{`discovery_address = "istiod:015012"`, `discovery_address: "istiod:015012" has no valid port`},
		{`ca_address = "ca:0"`, `ca_address: "ca:0"`},
		{`proxy_config = "binaryPath: /bin/sh"`, `proxy_config: binaryPath (binary_path) is set by the driver`},
		{`proxy_config = "configPath: /tmp"`, `proxy_config: configPath (config_path) is set by the driver`},
		{`proxy_config = "concurrency: 2"`, `proxy_config: concurrency (concurrency) is set by the concurrency field`},
		{`proxy_config = "- a"`, `proxy_config: not a YAML mapping`},
		{`log_level = "loud"`, `log_level: "loud"`},
		{`concurrency = -1`, `concurrency: -1`},
		{`drain_duration = "forever"`, `drain_duration: "forever"`},
		{`readiness_timeout = "-1s"`, `readiness_timeout: "-1s"`},
	}
	s, _ := defaultConfig().validate()
	for _, tc := range cases {
		t.Run(tc.want, func(t *testing.T) {
			c, err := decodeTask(t, tc.body)
			if err == nil {
				_, err = c.validate(s)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestTaskConfig_UnknownKeyIsRejectedBySchema(t *testing.T) {
	_, err := decodeTask(t, `serviceaccount = "x"`)
	if err == nil || !strings.Contains(err.Error(), "serviceaccount") {
		t.Fatalf("got %v, want an error naming the unknown key", err)
	}
}
