package driver

import (
	"strings"
	"testing"

	"github.com/hashicorp/nomad/plugins/drivers"
	"gopkg.in/yaml.v3"

	"github.com/istio-sidecar/istio-sidecar/driver/proxy"
	"github.com/istio-sidecar/istio-sidecar/driver/rules"
)

func TestProxyEnvironment_FromConfigAndAllocation(t *testing.T) {
	s, _ := defaultConfig().validate()
	s.CAAddress = "ca.example.org:15012"
	s.WorkloadCertTTL = "2m"
	tc, err := decodeTask(t, `
discovery_address = "istiod.example.org:15012"
proxy_config      = "tracing:\n  sampling: 5\n"
concurrency       = 3
drain_duration    = "20s"
`)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := tc.validate(s)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &drivers.TaskConfig{
		AllocID: "4f1c2d3e-aaaa-bbbb-cccc-000000000000", JobName: "Payments_API", JobID: "Payments_API", TaskGroupName: "web",
		Name: "istio-proxy", Namespace: "prod", NodeName: "host-1", NodeID: "node-1",
		Env:              map[string]string{"NOMAD_DC": "dc1"},
		AllocDir:         "/var/nomad/alloc/4f1c",
		NetworkIsolation: &drivers.NetworkIsolationSpec{Path: "/var/run/netns/4f1c", HostsConfig: &drivers.HostsConfig{Address: "172.26.64.7"}},
	}
	env, err := proxyEnvironment(cfg, s, ts, rules.ModeRedirect)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"POD_NAME":                     "payments-api-web-4f1c2d3e",
		"POD_NAMESPACE":                "prod",
		"SERVICE_ACCOUNT":              "default",
		"CANONICAL_SERVICE":            "payments-api",
		"INSTANCE_IP":                  "172.26.64.7",
		"CA_ADDR":                      "ca.example.org:15012",
		"ISTIOD_SAN":                   "istiod.service.nomad",
		"ISTIO_META_CLUSTER_ID":        "nomad",
		"TRUST_DOMAIN":                 "cluster.local",
		"ISTIO_META_NOMAD_DATACENTER":  "dc1",
		"ISTIO_META_NOMAD_GROUP":       "web",
		"ISTIO_META_INTERCEPTION_MODE": "REDIRECT",
		"SECRET_TTL":                   "2m",
	} {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
	var pc map[string]any
	if err := yaml.Unmarshal([]byte(env["PROXY_CONFIG"]), &pc); err != nil {
		t.Fatal(err)
	}
	if pc["discoveryAddress"] != "istiod.example.org:15012" || pc["concurrency"] != 3 || pc["terminationDrainDuration"] != "20s" ||
		pc["binaryPath"] != s.EnvoyPath || pc["configPath"] != "./etc/istio/proxy" || pc["statusPort"] != 15020 ||
		pc["tracing"] == nil {
		t.Errorf("PROXY_CONFIG: %v", pc)
	}
}

func TestPodName_IsAValidDNSLabelUniquePerAllocation(t *testing.T) {
	cfg := &drivers.TaskConfig{AllocID: "12345678-aaaa", JobName: strings.Repeat("VeryLongJob.", 10), TaskGroupName: "g"}
	name := podName(cfg)
	if len(name) > 63 || !dns1123Label.MatchString(name) || !strings.HasSuffix(name, "-12345678") {
		t.Fatalf("pod name %q", name)
	}
}

// The case: the operator left cluster_id, mesh_id and network empty and DNS capture off; a job's env
// sets them for pilot-agent through the default ISTIO_META_ passthrough. They stay the driver's: unset.
func TestProxyEnv_JobCannotFillWhatTheOperatorLeftEmpty(t *testing.T) {
	c := defaultConfig()
	c.ClusterID = ""
	s, err := c.validate()
	if err != nil {
		t.Fatal(err)
	}
	ts, err := TaskConfig{ServiceAccount: "default", CanonicalRevision: "latest", LogLevel: "warning", DrainDuration: "5s"}.validate(s)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &drivers.TaskConfig{AllocID: "4f1c2d3e-aaaa-bbbb-cccc-000000000000", JobName: "payments", TaskGroupName: "api",
		Env: map[string]string{"ISTIO_META_NETWORK": "evil", "ISTIO_META_MESH_ID": "evil", "ISTIO_META_CLUSTER_ID": "evil",
			"ISTIO_META_DNS_CAPTURE": "true"}}
	vars, err := proxyEnvironment(cfg, s, ts, rules.ModeRedirect)
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range proxy.EnvList(cfg.Env, s.EnvPassthrough, vars) {
		if strings.HasSuffix(kv, "=evil") || kv == "ISTIO_META_DNS_CAPTURE=true" {
			t.Errorf("the job set %s", kv)
		}
	}
}

// Without workload_cert_ttl the driver leaves SECRET_TTL out, so pilot-agent's own default (24h) applies.
func TestProxyEnvironment_NoWorkloadCertTTLLeavesPilotAgentsDefault(t *testing.T) {
	s, _ := defaultConfig().validate()
	tc, err := decodeTask(t, ``)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := tc.validate(s)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &drivers.TaskConfig{AllocID: "4f1c2d3e-aaaa-bbbb-cccc-000000000000", JobName: "j", JobID: "j",
		TaskGroupName: "g", Name: "istio-proxy", Namespace: "default"}
	env, err := proxyEnvironment(cfg, s, ts, rules.ModeRedirect)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := env["SECRET_TTL"]; ok {
		t.Errorf("SECRET_TTL = %q with no workload_cert_ttl", v)
	}
}
