package proxy

// Istio's fixed sidecar ports. The bootstrap template pins 15021 and 15090; the driver pins the admin and
// status ports in ProxyConfig so its probes never have to guess.
const (
	AdminPort       = 15000 // Envoy admin (localhost only)
	OutboundPort    = 15001 // outbound capture
	InboundPort     = 15006 // inbound capture
	TunnelPort      = 15008 // HBONE
	StatusPort      = 15020 // pilot-agent status and merged Prometheus
	HealthPort      = 15021 // Envoy health listener, routes /healthz/ready to the agent
	DNSPort         = 15053 // agent DNS proxy
	PrometheusPort  = 15090 // Envoy Prometheus
	readyPath       = "/healthz/ready"
	drainPath       = "/drain"
	loopbackAddress = "127.0.0.1"
)
