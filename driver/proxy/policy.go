package proxy

import (
	"fmt"
	"sort"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	meshconfig "istio.io/api/mesh/v1alpha1"
)

// Who may set which ProxyConfig field, by canonical (proto) name. The README's proxy_config table is this file.
//
// A job author is not trusted: the proxy runs as the proxy user, which every meshed allocation on the node
// shares, whose traffic is never captured and which can read every sidecar's token. So a job may set only what
// an app team tunes for its own proxy and that reaches no code, no file, no other workload's secret or
// identity, no control-plane trust and none of the driver's settings. The operator may set everything but
// the driver's own fields.

// DriverOwned are the fields the driver sets for every author: the binaries and files the proxy runs and
// loads, and the ports its probes and rules rely on.
var DriverOwned = map[protoreflect.Name]bool{
	"binary_path": true, "config_path": true, "custom_config_file": true, "proxy_bootstrap_template_path": true,
	"proxy_admin_port": true, "status_port": true,
}

// JobAllowed are the fields a job may set.
var JobAllowed = map[protoreflect.Name]bool{
	"drain_duration": true, "stat_name_length": true, "proxy_stats_matcher": true, "extra_stat_tags": true,
	"tracing": true, "proxy_headers": true, "file_flush_interval": true, "file_flush_min_size_kb": true,
	"stats_compression": true, "discovery_refresh_delay": true, "connection_settings": true,
	"tracing_service_name": true,
}

// jobRefusedNested are parts of an allowed field that a job may not set.
var jobRefusedNested = map[string]string{
	"tracing.tls_settings": "it names the certificate and key files the proxy user reads and presents to the tracer",
}

// JobRefusals say why each field outside JobAllowed is refused to a job (the typed fields say where to set
// them instead, in the driver's table). A field no entry names is refused as not on the allow-list.
var JobRefusals = []struct {
	Why    string
	Fields []protoreflect.Name
}{
	{"it runs commands as the proxy user (an exec probe), or changes what Envoy's runtime does", []protoreflect.Name{
		"readiness_probe", "runtime_values", "private_key_provider", "image"}},
	{"pilot-agent sends its ISTIO_META_* keys to istiod as the proxy's node metadata (cluster, network, mesh, " +
		"DNS capture) and reads the files its ISTIO_META_TLS_CLIENT_* keys name, to present them to istiod",
		[]protoreflect.Name{"proxy_metadata"}},
	{"it decides what the proxy trusts for the control plane, or which mesh, locality and service it claims to be",
		[]protoreflect.Name{"control_plane_auth_policy", "ca_certificates_pem", "sds", "mesh_id", "availability_zone",
			"service_cluster", "gateway_topology"}},
	{"it names an address (and TLS files) that the proxy sends its logs, metrics or traces to", []protoreflect.Name{
		"envoy_access_log_service", "envoy_metrics_service", "zipkin_address", "statsd_udp_address",
		"envoy_metrics_service_address"}},
}

func jobRefusal(name protoreflect.Name) string {
	for _, r := range JobRefusals {
		for _, f := range r.Fields {
			if f == name {
				return r.Why
			}
		}
	}
	return "it is not on the allow-list"
}

// checkFields decides each named field. fields maps canonical names to the spelling the YAML used.
func checkFields(who Author, fields map[protoreflect.Name]string, typed map[string]string) error {
	names := make([]protoreflect.Name, 0, len(fields))
	for n := range fields {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return names[i] < names[j] })
	for _, n := range names {
		spelled := fmt.Sprintf("%s (%s)", fields[n], n)
		if DriverOwned[n] {
			return fmt.Errorf("%s is set by the driver and cannot be overridden", spelled)
		}
		if by, ok := typed[string(n)]; ok {
			if by != "" {
				return fmt.Errorf("%s is set by %s; set it there only", spelled, by)
			}
			continue
		}
		if who == Job && !JobAllowed[n] {
			return fmt.Errorf("%s cannot be set by a job: %s; the plugin's proxy_config can set it fleet-wide", spelled, jobRefusal(n))
		}
	}
	return nil
}

// checkNested refuses, in a job's layer, the populated parts of allowed fields that a job may not set.
func checkNested(who Author, m protoreflect.Message, prefix string) error {
	if who != Job {
		return nil
	}
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		path := prefix + string(fd.Name())
		if why, refused := jobRefusedNested[path]; refused {
			err = fmt.Errorf("%s cannot be set by a job: %s; the plugin's proxy_config can set it fleet-wide", path, why)
			return false
		}
		if fd.Kind() == protoreflect.MessageKind && !fd.IsList() && !fd.IsMap() {
			err = checkNested(who, v.Message(), path+".")
		}
		return err == nil
	})
	return err
}

func cloneHeaders(h *meshconfig.ProxyConfig_ProxyHeaders) *meshconfig.ProxyConfig_ProxyHeaders {
	return proto.Clone(h).(*meshconfig.ProxyConfig_ProxyHeaders)
}

func orDefault[T proto.Message](v, def T) T {
	if v.ProtoReflect().IsValid() {
		return v
	}
	return def
}
