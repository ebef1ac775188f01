// Package driver is the Nomad surface of the istio-sidecar task driver: the static plugin description, the
// RPCs Nomad calls, and the per-task handles. The proxy's own knowledge lives in driver/proxy.
package driver

import (
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/nomad/plugins/base"
	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/hashicorp/nomad/plugins/shared/hclspec"
)

const (
	// PluginName is the jobspec's driver name, the client's plugin block label and the binary's file name.
	PluginName = "istio-sidecar"

	fingerprintPeriod = 30 * time.Second
	taskHandleVersion = 1
)

// Version is the plugin's version, stamped at build time by the Makefile.
var Version = "0.1.0-dev"

var pluginInfo = &base.PluginInfoResponse{
	Type:              base.PluginTypeDriver,
	PluginApiVersions: []string{drivers.ApiVersion010},
	PluginVersion:     Version,
	Name:              PluginName,
}

func str(def string) *hclspec.Spec { return hclspec.NewLiteral(`"` + def + `"`) }

func attr(name, typ string, def *hclspec.Spec) *hclspec.Spec {
	a := hclspec.NewAttr(name, typ, false)
	if def == nil {
		return a
	}
	return hclspec.NewDefault(a, def)
}

// configSpec is the client's plugin "istio-sidecar" { config { ... } } block: what a fleet sets once per host.
// Its defaults are defaultConfig's, the one place they are written.
var configSpec = pluginConfigSpec(defaultConfig())

func pluginConfigSpec(def Config) *hclspec.Spec {
	return hclspec.NewObject(map[string]*hclspec.Spec{
		"pilot_agent_path":        attr("pilot_agent_path", "string", str(def.PilotAgentPath)),
		"envoy_path":              attr("envoy_path", "string", str(def.EnvoyPath)),
		"bootstrap_template_path": attr("bootstrap_template_path", "string", str(def.BootstrapTemplatePath)),
		"proxy_uid":               attr("proxy_uid", "number", hclspec.NewLiteral(strconv.Itoa(def.ProxyUID))),
		"proxy_gid":               attr("proxy_gid", "number", hclspec.NewLiteral(strconv.Itoa(def.ProxyGID))),
		"discovery_address":       attr("discovery_address", "string", str(def.DiscoveryAddress)),
		"ca_address":              attr("ca_address", "string", nil),
		"istiod_san":              attr("istiod_san", "string", str(def.IstiodSAN)),
		"trust_domain":            attr("trust_domain", "string", str(def.TrustDomain)),
		"cluster_id":              attr("cluster_id", "string", str(def.ClusterID)),
		"mesh_id":                 attr("mesh_id", "string", nil),
		"network":                 attr("network", "string", nil),
		"proxy_config":            attr("proxy_config", "string", nil),
		"root_cert_path":          attr("root_cert_path", "string", nil),
		"readiness_timeout":       attr("readiness_timeout", "string", str(def.ReadinessTimeout)),
		"workload_cert_ttl":       attr("workload_cert_ttl", "string", nil),
		"no_cgroups":              attr("no_cgroups", "bool", hclspec.NewLiteral("false")),
		// Fleet-wide interception defaults, the same keys as the jobspec's; a key a job sets replaces these.
		"interception":              hclspec.NewBlock("interception", false, hclspec.NewObject(interceptionSpec())),
		"host_exclude_ports":        attr("host_exclude_ports", "list(string)", hclspec.NewLiteral(hclList(def.HostExcludePorts))),
		"interception_grace_period": attr("interception_grace_period", "string", str(def.InterceptionGracePeriod)),
		"drift_check_interval":      attr("drift_check_interval", "string", str(def.DriftCheckInterval)),
		"state_dir":                 attr("state_dir", "string", str(def.StateDir)),
		// IDs treated as the proxy's (Istio's -u/-g lists): plugin config only, never a jobspec.
		"extra_proxy_uids": attr("extra_proxy_uids", "list(number)", nil),
		"extra_proxy_gids": attr("extra_proxy_gids", "list(number)", nil),
		// Prefixes of the task variables that reach pilot-agent and Envoy besides NOMAD_*; see proxy.EnvList.
		"env_passthrough": attr("env_passthrough", "list(string)", hclspec.NewLiteral(hclList(def.EnvPassthrough))),
	})
}

// interceptionSpec: Istio's sidecar annotations (traffic.sidecar.istio.io/...) in snake case. Lists take one
// value per element; an absent include list means "*".
func interceptionSpec() map[string]*hclspec.Spec {
	m := map[string]*hclspec.Spec{
		"interception_mode": attr("interception_mode", "string", nil),
		"dns_capture":       attr("dns_capture", "bool", hclspec.NewLiteral("false")),
		"capture_all_dns":   attr("capture_all_dns", "bool", hclspec.NewLiteral("false")),
		"drop_invalid":      attr("drop_invalid", "bool", hclspec.NewLiteral("false")),
		// ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR; empty means Istio's 127.0.0.1/32.
		"outbound_ipv4_loopback_cidr": attr("outbound_ipv4_loopback_cidr", "string", nil),
	}
	for _, k := range []string{
		"include_inbound_ports", "exclude_inbound_ports", "include_outbound_ip_ranges", "exclude_outbound_ip_ranges",
		"include_outbound_ports", "exclude_outbound_ports", "exclude_interfaces",
		"include_outbound_owner_groups", "exclude_outbound_owner_groups",
	} {
		m[k] = attr(k, "list(string)", nil)
	}
	return m
}

func hclList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = `"` + s + `"`
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// taskConfigSpec is the jobspec's config { ... } block, in the vocabulary of istioctl's cluster.env and of
// Istio's sidecar annotations.
var taskConfigSpec = hclspec.NewObject(withInterception(map[string]*hclspec.Spec{
	"namespace":          attr("namespace", "string", nil),
	"service_account":    attr("service_account", "string", str("default")),
	"canonical_service":  attr("canonical_service", "string", nil),
	"canonical_revision": attr("canonical_revision", "string", str("latest")),
	// list(map(string)), decoded by hclutils.MapStrStr: a map in a jobspec reaches the client as a list of maps.
	"labels":                              attr("labels", "list(map(string))", nil),
	"instance_ip":                         attr("instance_ip", "string", nil),
	"discovery_address":                   attr("discovery_address", "string", nil),
	"ca_address":                          attr("ca_address", "string", nil),
	"proxy_config":                        attr("proxy_config", "string", nil),
	"root_cert_path":                      attr("root_cert_path", "string", str(defaultRootCertSource)),
	"token_path":                          attr("token_path", "string", str(defaultTokenSource)),
	"log_level":                           attr("log_level", "string", str("warning")),
	"concurrency":                         attr("concurrency", "number", hclspec.NewLiteral("0")),
	"drain_duration":                      attr("drain_duration", "string", str("5s")),
	"exit_on_zero_active_connections":     attr("exit_on_zero_active_connections", "bool", hclspec.NewLiteral("false")),
	"hold_application_until_proxy_starts": attr("hold_application_until_proxy_starts", "bool", hclspec.NewLiteral("true")),
	"readiness_timeout":                   attr("readiness_timeout", "string", nil),
	"app_prober":                          hclspec.NewBlockList("app_prober", appProberSpec),
}))

// appProberSpec is one app_prober block, in the vocabulary of Nomad's check block and Kubernetes' probes.
var appProberSpec = hclspec.NewObject(map[string]*hclspec.Spec{
	"name":         hclspec.NewAttr("name", "string", true),
	"probe":        attr("probe", "string", str("readyz")),
	"type":         attr("type", "string", str("http")),
	"path":         attr("path", "string", str("/")),
	"scheme":       attr("scheme", "string", str("http")),
	"grpc_service": attr("grpc_service", "string", nil),
	"port":         hclspec.NewAttr("port", "number", true),
	"timeout":      attr("timeout", "string", str("1s")),
})

func withInterception(m map[string]*hclspec.Spec) map[string]*hclspec.Spec {
	for k, v := range interceptionSpec() {
		m[k] = v
	}
	return m
}

// capabilities: group isolation lets bridge and CNI groups run their proxy inside the group's namespace. No
// MustInitiateNetwork: that is Docker's pause-container path; the Nomad client creates the namespace itself.
var capabilities = &drivers.Capabilities{
	SendSignals: true,
	Exec:        true,
	FSIsolation: drivers.FSIsolationNone,
	NetIsolationModes: []drivers.NetIsolationMode{
		drivers.NetIsolationModeHost,
		drivers.NetIsolationModeGroup,
	},
	MountConfigs: drivers.MountConfigSupportNone,
}
