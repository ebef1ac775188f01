package driver

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/istio-sidecar/istio-sidecar/driver/rules"
)

// jobProxyConfig validates a task whose proxy_config is doc, with the plugin's defaults.
func jobProxyConfig(t *testing.T, doc string) (*taskSettings, error) {
	t.Helper()
	s, err := defaultConfig().validate()
	if err != nil {
		t.Fatal(err)
	}
	return TaskConfig{ServiceAccount: "default", CanonicalRevision: "latest", LogLevel: "warning", DrainDuration: "5s",
		ProxyConfig: doc}.validate(s)
}

// A job's proxy_config is decided by an allow-list, on the canonical field whatever spelling the YAML uses.
func TestTaskProxyConfig_RefusesWhatIsNotOnTheAllowList(t *testing.T) {
	cases := []struct{ doc, want string }{
		// Code: pilot-agent runs an exec readiness probe as the proxy user.
		{"readinessProbe:\n  exec:\n    command: [/bin/sh, -c, id > /tmp/x]\n", "readinessProbe (readiness_probe)"},
		{"readiness_probe:\n  exec:\n    command: [/bin/true]\n", "readiness_probe (readiness_probe)"},
		// Files and binaries the proxy would load, in both spellings.
		{"custom_config_file: local/evil.json\n", `custom_config_file (custom_config_file) is set by the driver`},
		{"customConfigFile: local/evil.json\n", `customConfigFile (custom_config_file) is set by the driver`},
		{"binary_path: /bin/sh\n", `binary_path (binary_path) is set by the driver`},
		{"proxy_bootstrap_template_path: local/t.json\n", `proxy_bootstrap_template_path (proxy_bootstrap_template_path) is set by the driver`},
		{"proxyAdminPort: 22\n", `proxyAdminPort (proxy_admin_port) is set by the driver`},
		{"status_port: 0\n", `status_port (status_port) is set by the driver`},
		// Typed fields, in both spellings, say where to set them.
		{"discovery_address: evil:15012\n", "discovery_address (discovery_address) is set by the discovery_address field"},
		{"termination_drain_duration: 1s\n", "termination_drain_duration (termination_drain_duration) is set by the drain_duration field"},
		{"concurrency: 2\n", "concurrency (concurrency) is set by the concurrency field"},
		{"interceptionMode: TPROXY\n", "interceptionMode (interception_mode) is set by the interception_mode field"},
		{"holdApplicationUntilProxyStarts: false\n", "holdApplicationUntilProxyStarts (hold_application_until_proxy_starts) is set by the hold_application_until_proxy_starts field"},
		// Environment, node metadata, trust, identity and addresses the operator decides.
		{"proxyMetadata:\n  ISTIO_META_TLS_CLIENT_KEY: /etc/ssl/private/key.pem\n", "proxyMetadata (proxy_metadata)"},
		{"runtime_values:\n  a: b\n", "runtime_values (runtime_values)"},
		{"caCertificatesPem: [x]\n", "caCertificatesPem (ca_certificates_pem)"},
		{"controlPlaneAuthPolicy: NONE\n", "controlPlaneAuthPolicy (control_plane_auth_policy)"},
		{"envoyAccessLogService:\n  address: evil:9000\n", "envoyAccessLogService (envoy_access_log_service)"},
		{"zipkin_address: evil:9411\n", "zipkin_address (zipkin_address)"},
		{"statsdUdpAddress: evil:8125\n", "statsdUdpAddress (statsd_udp_address)"},
		{"meshId: other\n", "meshId (mesh_id)"},
		{"serviceCluster: other-service\n", "serviceCluster (service_cluster)"},
		{"tracing:\n  tlsSettings:\n    clientCertificate: /var/run/secrets/other/cert.pem\n", "tracing.tls_settings"},
		{"gatewayTopology:\n  numTrustedProxies: 2\n", "gatewayTopology (gateway_topology)"},
		// Not a field at all.
		{"notAField: 1\n", `unknown ProxyConfig field "notAField"`},
		{"tracing:\n  notAField: 1\n", "proxy_config: "},
		{"- a\n", "proxy_config: not a YAML mapping"},
	}
	for _, tc := range cases {
		t.Run(tc.want, func(t *testing.T) {
			_, err := jobProxyConfig(t, tc.doc)
			if err == nil || !strings.Contains(err.Error(), "proxy_config: ") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%q: got %v, want an error containing %q", tc.doc, err, tc.want)
			}
		})
	}
}

func TestTaskProxyConfig_AllowsWhatAnAppTeamTunes(t *testing.T) {
	doc := `drainDuration: 10s
stat_name_length: 200
proxyStatsMatcher: {inclusionPrefixes: [cluster.outbound]}
extraStatTags: [tenant]
tracing: {sampling: 10, zipkin: {address: "zipkin.example.org:9411"}}
proxyHeaders: {server: {disabled: true}}
fileFlushInterval: 2s
file_flush_min_size_kb: 64
statsCompression: true
discoveryRefreshDelay: 2s
connectionSettings: {httpIdleTimeout: 30s}
tracingServiceName: CANONICAL_NAME_ONLY
`
	if _, err := jobProxyConfig(t, doc); err != nil {
		t.Fatal(err)
	}
}

// The fleet (the operator) may set anything but what the driver owns.
func TestPluginProxyConfig_OperatorMaySetAllButTheDriversFields(t *testing.T) {
	for doc, want := range map[string]string{
		"readinessProbe:\n  exec:\n    command: [/bin/true]\nproxyMetadata: {A: b}\nmeshId: m\nconcurrency: 2\n": "",
		"custom_config_file: /etc/envoy.json\n":           "custom_config_file (custom_config_file) is set by the driver",
		"statusPort: 1\n":                                 "statusPort (status_port) is set by the driver",
		"discoveryAddress: istiod:15012\n":                "discoveryAddress (discovery_address) is set by the plugin's discovery_address",
		"interception_mode: TPROXY\n":                     "interception_mode (interception_mode) is set by the interception block's interception_mode",
		"termination_drain_duration: 1s\n":                "termination_drain_duration (termination_drain_duration) is set by each job's drain_duration",
		"hold_application_until_proxy_starts: false\n":    "is set by each job's hold_application_until_proxy_starts",
		"tracing:\n  tlsSettings: {mode: SIMPLE}\nx: 1\n": `unknown ProxyConfig field "x"`,
	} {
		c := defaultConfig()
		c.ProxyConfig = doc
		_, err := c.validate()
		switch {
		case want == "" && err != nil:
			t.Errorf("%q: %v", doc, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), "proxy_config: ") || !strings.Contains(err.Error(), want)):
			t.Errorf("%q: got %v, want %q", doc, err, want)
		}
	}
}

// YAML's duplicate-key check is quadratic: the size is bounded before any parsing, with the field named.
func TestProxyConfig_SizeIsBoundedBeforeParsing(t *testing.T) {
	var b strings.Builder
	for i := 0; b.Len() <= 4<<20; i++ {
		fmt.Fprintf(&b, "k%d: 1\n", i)
	}
	huge := b.String()
	start := time.Now()
	_, err := jobProxyConfig(t, huge)
	if err == nil || !strings.Contains(err.Error(), "proxy_config: ") || !strings.Contains(err.Error(), "at most 32768 bytes") {
		t.Fatalf("job: got %v", err)
	}
	c := defaultConfig()
	c.ProxyConfig = huge
	if _, err := c.validate(); err == nil || !strings.Contains(err.Error(), "proxy_config: ") || !strings.Contains(err.Error(), "at most 65536 bytes") {
		t.Fatalf("fleet: got %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("refusing a 4 MiB proxy_config took %s: it was parsed", d)
	}
	// Just under the bounds is parsed as usual.
	if _, err := jobProxyConfig(t, "extraStatTags: ["+strings.Repeat(`"a",`, 30<<10/4-10)+`"a"]`); err != nil {
		t.Fatalf("a 30 KiB job proxy_config: %v", err)
	}
}

// PROXY_CONFIG is one environment string, which the kernel caps at 128 KiB (MAX_ARG_STRLEN): a bigger one could
// never start, so it is refused before anything starts, by name.
func TestProxyConfig_MergedDocumentFitsOneEnvironmentString(t *testing.T) {
	// 60 KiB of YAML, four times over through an alias: about 240 KiB of PROXY_CONFIG.
	tags := make([]string, 0, 60)
	for i := range 60 {
		tags = append(tags, strconv.Quote(fmt.Sprintf("%04d%s", i, strings.Repeat("x", 1000))))
	}
	doc := "extraStatTags: &t [" + strings.Join(tags, ",") + "]\nproxyStatsMatcher: {inclusionPrefixes: *t, inclusionSuffixes: *t, inclusionRegexps: *t}\n"
	c := defaultConfig()
	c.ProxyConfig = doc
	s, err := c.validate()
	if err != nil {
		t.Fatal(err)
	}
	tc := TaskConfig{ServiceAccount: "default", CanonicalRevision: "latest", LogLevel: "warning", DrainDuration: "5s"}
	ts, err := tc.validate(s)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &drivers.TaskConfig{AllocID: "4f1c2d3e-aaaa-bbbb-cccc-000000000000", JobName: "payments", TaskGroupName: "api"}
	_, err = proxyEnvironment(cfg, s, ts, rules.ModeRedirect)
	if err == nil || !strings.Contains(err.Error(), "PROXY_CONFIG") || !strings.Contains(err.Error(), "131072") {
		t.Fatalf("got %v, want an error saying PROXY_CONFIG exceeds the kernel's limit", err)
	}
}

// Under the size bound, YAML aliases could still expand a document a billion times: yaml.v3 refuses that.
func TestProxyConfig_AliasExpansionIsRefused(t *testing.T) {
	doc := "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
	for i, name := range []string{"b", "c", "d", "e", "f", "g", "h", "i"} {
		prev := string(rune('a' + i))
		doc += name + ": &" + name + " [" + strings.Repeat("*"+prev+",", 8) + "*" + prev + "]\n"
	}
	start := time.Now()
	if _, err := jobProxyConfig(t, doc); err == nil || !strings.Contains(err.Error(), "proxy_config: ") {
		t.Fatalf("got %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %s", d)
	}
}
