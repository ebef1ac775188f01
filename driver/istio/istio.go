// Package istio holds the fixed numbers of Istio's sidecar contract, the ones pilot-agent, Envoy's bootstrap
// and istio-iptables agree on without configuration: the proxy's ports, its user, the marks and the routing
// table of TPROXY mode. The proxy package (probes, ProxyConfig) and the rules package (what is captured and
// where it goes) both take them from here, so that the two can never disagree. Untyped, so that each side
// keeps its own types (uint16 ports in the rules, int in URLs).
package istio

// The sidecar's ports (Istio's "Ports used by Istio" table). Envoy's bootstrap template pins 15021 and 15090;
// the driver pins the admin and status ports in ProxyConfig so its probes never have to guess.
const (
	AdminPort           = 15000 // Envoy admin, on localhost only
	OutboundCapturePort = 15001 // Envoy's virtual outbound listener (istio-iptables -p)
	InboundCapturePort  = 15006 // Envoy's virtual inbound listener (-z)
	TunnelPort          = 15008 // HBONE, never captured (-e)
	StatusPort          = 15020 // pilot-agent's status server and merged Prometheus
	HealthPort          = 15021 // Envoy's health listener, which routes /healthz/ready to the agent
	DNSCapturePort      = 15053 // pilot-agent's DNS proxy
	PrometheusPort      = 15090 // Envoy's Prometheus endpoint
)

// ReservedPort names the sidecar's port p, or "" if it is none of them: an app's port never is.
func ReservedPort(p int) string {
	return map[int]string{
		AdminPort: "Envoy admin port", OutboundCapturePort: "outbound capture port",
		InboundCapturePort: "inbound capture port", TunnelPort: "HBONE tunnel port", StatusPort: "status port",
		HealthPort: "health port", DNSCapturePort: "DNS proxy port", PrometheusPort: "Prometheus port",
	}[p]
}

// ProxyUID and ProxyGID are the istio-proxy user's: traffic from them is Envoy's own and is never captured.
const (
	ProxyUID = 1337
	ProxyGID = 1337
)

// TPROXY mode (Istio's constants.DefaultTProxyMark and OutboundMark, and INBOUND_TPROXY_ROUTE_TABLE): inbound
// packets are marked and routed locally through their own table; Envoy's outbound packets to the local app
// carry the other mark so that they are not captured again.
const (
	TProxyMark       = 1337
	OutboundMark     = 1338
	TProxyRouteTable = 133
)
