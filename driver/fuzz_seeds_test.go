package driver

import (
	"strings"

	meshconfig "istio.io/api/mesh/v1alpha1"
)

var proxyConfigDescriptor = (&meshconfig.ProxyConfig{}).ProtoReflect().Descriptor()

// fuzzSeeds are the attacks of issue 8 and their neighbours, as a jobspec would write them; the normal test
// run replays them.
var fuzzSeeds = []struct {
	body, env string
	host      bool
}{
	{``, ``, false},
	{``, ``, true},
	// Code and config takeover through proxy_config.
	{`proxy_config = "readinessProbe: {exec: {command: [/bin/sh, -c, 'id > /tmp/x; cat ../../other/secrets/istio-token >> /tmp/x']}}"`, ``, false},
	{`proxy_config = "custom_config_file: local/evil.json"`, ``, false},
	{`proxy_config = "customConfigFile: local/evil.json"`, ``, false},
	{`proxy_config = "binary_path: /bin/sh"`, ``, false},
	{`proxy_config = "discovery_address: evil:15012"`, ``, false},
	{`proxy_config = "proxy_bootstrap_template_path: local/t.json"`, ``, false},
	{`proxy_config = "termination_drain_duration: 1s"`, ``, false},
	{`proxy_config = "proxyMetadata: {ISTIO_META_CLUSTER_ID: evil, ISTIO_META_TLS_CLIENT_KEY: /etc/ssl/key.pem}"`, ``, false},
	{`proxy_config = "runtimeValues: {a: b}\nprivateKeyProvider: {}"`, ``, false},
	{`proxy_config = "tracing: {sampling: 1, tlsSettings: {clientCertificate: ../other/cert.pem}}"`, ``, false},
	{`proxy_config = "tracing: {sampling: 1, zipkin: {address: 'z:9411'}}\nextraStatTags: [a]\nproxyHeaders: {server: {disabled: true}}"`, ``, false},
	{`proxy_config = "statusPort: 22\nproxyAdminPort: 22"`, ``, true},
	{`proxy_config = "` + strings.Repeat("k: 1\\n", 8000) + `"`, ``, false},
	// Host safety.
	{`include_inbound_ports = ["022", "04647"]`, ``, true},
	{`include_inbound_ports = ["22"]`, ``, true},
	{`include_inbound_ports = ["8080", "0000004646"]`, ``, true},
	{`include_outbound_ports = ["22", "4647"]`, ``, true},
	{`exclude_interfaces = ["lo"]` + "\n" + `include_outbound_ip_ranges = ["0.0.0.0/0"]`, ``, true},
	{`dns_capture = true` + "\n" + `capture_all_dns = true`, ``, true},
	{`interception_mode = "TPROXY"`, ``, true},
	{`exclude_outbound_ip_ranges = ["::ffff:10.0.0.0/104"]`, ``, false},
	// What reaches the proxy.
	{``, "ISTIO_META_NETWORK=evil\nISTIO_META_MESH_ID=evil\nISTIO_META_CLUSTER_ID=evil\nISTIO_META_DNS_CAPTURE=true", false},
	{``, "ISTIO_METAJSON_X={\"CLUSTER_ID\":\"evil\"}\nLD_PRELOAD=/tmp/x.so\nISTIO_BOOTSTRAP_OVERRIDE=/tmp/b\nCA_ADDR=evil:1", false},
	{`interception_mode = "TPROXY"`, "ISTIO_META_INTERCEPTION_MODE=REDIRECT\nISTIO_META_NOMAD_ALLOC_ID=other\nNOMAD_ALLOC_ID=x", false},
	{`log_level = "debug --templateFile=/tmp/t"`, ``, false},
	{`labels = { app = "x" }` + "\n" + `canonical_service = "other"`, "ISTIO_META_WORKLOAD_NAME=other", false},
}
