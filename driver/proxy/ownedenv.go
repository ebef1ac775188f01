package proxy

import "strings"

// ownedVariables are the environment variables the driver decides for pilot-agent and Envoy. A job's env
// never sets one, whatever the operator's passthrough prefixes, and whether the driver sets it or leaves it
// out so that pilot-agent's default applies: an empty value the driver dropped is not the job's to fill.
//
// They are what the driver sets, and what pilot-agent (the pinned istio.io/istio: pilot/cmd/pilot-agent,
// pkg/istio-agent, pkg/bootstrap, security/pkg) reads to decide who the proxy is, whom it trusts, where its
// certificates come from and what it executes.
var ownedVariables = setOf(
	// Set by the driver (Environment, and the start's own additions).
	"POD_NAME", "POD_NAMESPACE", "SERVICE_ACCOUNT", "CANONICAL_SERVICE", "CANONICAL_REVISION", "INSTANCE_IP",
	"ISTIO_META_WORKLOAD_NAME", "ISTIO_META_INTERCEPTION_MODE", "TRUST_DOMAIN", "CA_ADDR",
	"ISTIO_META_CLUSTER_ID", "ISTIO_META_MESH_ID", "ISTIO_META_NETWORK", "ISTIO_META_DNS_CAPTURE",
	"JWT_POLICY", "PROXY_CONFIG", "EXIT_ON_ZERO_ACTIVE_CONNECTIONS", "PATH",
	"ISTIO_KUBE_APP_PROBERS", "REWRITE_PROBE_LEGACY_LOCALHOST_DESTINATION", "ENABLE_PROBE_KEEPALIVE_CONNECTIONS",
	// Identity, certificates and trust.
	"CA_PROVIDER", "CA_ROOT_CA", "CERT_SIGNER_DOMAIN", "ISTIO_META_CERT_SIGNER", "PROV_CERT", "OUTPUT_CERTS",
	"FILE_MOUNTED_CERTS", "ISTIO_META_TLS_CLIENT_KEY", "ISTIO_META_TLS_CLIENT_CERT_CHAIN",
	"ISTIO_META_TLS_CLIENT_ROOT_CERT", "XDS_ROOT_CA", "XDS_AUTH", "XDS_AUTH_PLAINTEXT", "XDS_AUTH_PROVIDER",
	"ISTIOD_SAN", "PILOT_CERT_PROVIDER", "TOKEN_AUDIENCES", "CREDENTIAL_FETCHER_TYPE",
	"CREDENTIAL_IDENTITY_PROVIDER", "WORKLOAD_IDENTITY_SOCKET_FILE", "WORKLOAD_RSA_KEY_SIZE", "ECC_CURVE",
	"ECC_SIGNATURE_ALGORITHM", "PKCS8_KEY", "SECRET_TTL", "USE_CACERTS_FOR_SELF_SIGNED_CA",
	"SSL_CERT_FILE", "SSL_CERT_DIR", "GODEBUG",
	// What runs, and which bootstrap it gets.
	"ISTIO_BOOTSTRAP", "ISTIO_BOOTSTRAP_OVERRIDE", "GRPC_XDS_BOOTSTRAP", "ENVOY_PATH", "DISABLE_ENVOY",
	// Where its connections to the control plane go.
	"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy", "KUBERNETES_SERVICE_HOST",
)

// ownedPrefixes are families of owned variables: the driver's Nomad metadata, the JSON metadata (pilot-agent
// merges any ISTIO_METAJSON_* object into the node metadata, so one could set any key: labels, cluster,
// network), and the dynamic loader's.
var ownedPrefixes = []string{"ISTIO_META_NOMAD_", "ISTIO_METAJSON_", "LD_"}

// OwnedVariable reports whether the driver owns the variable name.
func OwnedVariable(name string) bool {
	if ownedVariables[name] {
		return true
	}
	for _, p := range ownedPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

func setOf(names ...string) map[string]bool {
	out := make(map[string]bool, len(names))
	for _, n := range names {
		out[n] = true
	}
	return out
}
