package main

import (
	"bytes"
	"fmt"
	"math"
	"net/netip"
	"os"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Istio's defaults (pilot/cmd/pilot-agent/options, tools/packaging/common/envoy_bootstrap.json), used only
// when the bootstrap leaves the value out.
const (
	defaultAdminPort      = 15000
	defaultStatusPort     = 15020 // the agent's status server, upstream of the health listener
	defaultHealthPort     = 15021
	defaultPrometheusPort = 15090
)

// bootstrap is Envoy's bootstrap (envoy.config.bootstrap.v3.Bootstrap) and what the stand-in acts on in it.
type bootstrap struct {
	proto *bootstrapv3.Bootstrap
	admin netip.AddrPort
	// httpListeners are the static listeners whose HTTP routes point at static clusters: in Istio's
	// template the 15021 health listener and the 15090 Prometheus listener.
	httpListeners []httpListener
	// skipped names static listeners the stand-in cannot serve (TLS ones: the optional secure metrics ports).
	skipped []string
	// pipes maps each static cluster whose endpoint is a unix socket to its path: in Istio's template xds-grpc
	// (pilot-agent's XDS proxy) and sds-grpc (its SDS server), relative to the working directory.
	pipes map[string]string
}

type httpListener struct {
	name   string
	addrs  []netip.AddrPort
	routes []route
}

// route is one prefix route of an http_connection_manager resolved to its static cluster's first endpoint.
// upstream is invalid when the cluster is missing or has no socket endpoint; Envoy then answers 503.
type route struct {
	prefix   string
	cluster  string
	upstream netip.AddrPort
}

// bootstrapJSON decodes like Envoy with --allow-unknown-static-fields, which pilot-agent passes: a field newer
// than these types is ignored, and so is the content of a typed config of a type not registered.
var bootstrapJSON = protojson.UnmarshalOptions{DiscardUnknown: true, Resolver: anyResolver}

// loadBootstrap reads the file given with -c and applies --config-yaml on top, as Envoy does.
func loadBootstrap(path, overlay string) (*bootstrap, error) {
	var data []byte
	if path != "" {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return nil, fmt.Errorf("reading bootstrap: %w", err)
		}
	}
	return parseBootstrap(data, overlay)
}

func parseBootstrap(data []byte, overlay string) (*bootstrap, error) {
	boot := &bootstrapv3.Bootstrap{}
	if len(bytes.TrimSpace(data)) > 0 {
		if err := bootstrapJSON.Unmarshal(data, boot); err != nil {
			return nil, fmt.Errorf("bootstrap is not Envoy's bootstrap in JSON (the stand-in reads no YAML): %w", err)
		}
	}
	if overlay != "" {
		// pilot-agent converts ISTIO_BOOTSTRAP_OVERRIDE to JSON before passing it (pkg/envoy/proxy.go). Envoy
		// merges it with MergeFrom: messages field by field, repeated fields appended, scalars replaced.
		over := &bootstrapv3.Bootstrap{}
		if err := bootstrapJSON.Unmarshal([]byte(overlay), over); err != nil {
			return nil, fmt.Errorf("--config-yaml is not Envoy's bootstrap in JSON (the stand-in reads no YAML): %w", err)
		}
		proto.Merge(boot, over)
	}
	return resolveBootstrap(boot)
}

func resolveBootstrap(boot *bootstrapv3.Bootstrap) (*bootstrap, error) {
	b := &bootstrap{proto: boot, pipes: map[string]string{}}
	b.admin = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), defaultAdminPort)
	if sa := boot.GetAdmin().GetAddress().GetSocketAddress(); sa != nil {
		ap, err := addrPortOf(sa)
		if err != nil {
			return nil, fmt.Errorf("admin.address: %w", err)
		}
		b.admin = ap
	}
	clusters := map[string]netip.AddrPort{}
	for _, c := range boot.GetStaticResources().GetClusters() {
		clusters[c.GetName()] = firstEndpoint(c)
		if p := firstPipe(c); p != "" {
			b.pipes[c.GetName()] = p
		}
	}
	for i, l := range boot.GetStaticResources().GetListeners() {
		hl, ok, err := staticHTTPListener(l, clusters)
		if err != nil {
			return nil, fmt.Errorf("static_resources.listeners[%d] (%s): %w", i, l.GetName(), err)
		}
		if !ok {
			b.skipped = append(b.skipped, l.GetName())
			continue
		}
		b.httpListeners = append(b.httpListeners, hl)
	}
	if len(boot.GetStaticResources().GetListeners()) == 0 {
		b.httpListeners = defaultHTTPListeners(b.admin)
	}
	return b, nil
}

// defaultHTTPListeners is what Istio's template declares, for a bootstrap that has no static listeners.
func defaultHTTPListeners(admin netip.AddrPort) []httpListener {
	any4 := netip.IPv4Unspecified()
	agent := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), defaultStatusPort)
	return []httpListener{
		{
			name:   fmt.Sprintf("0.0.0.0_%d", defaultPrometheusPort),
			addrs:  []netip.AddrPort{netip.AddrPortFrom(any4, defaultPrometheusPort)},
			routes: []route{{prefix: "/stats/prometheus", cluster: "prometheus_stats", upstream: admin}},
		},
		{
			name:   fmt.Sprintf("0.0.0.0_%d", defaultHealthPort),
			addrs:  []netip.AddrPort{netip.AddrPortFrom(any4, defaultHealthPort)},
			routes: []route{{prefix: "/healthz/ready", cluster: "agent", upstream: agent}},
		},
	}
}

func addrPortOf(sa *corev3.SocketAddress) (netip.AddrPort, error) {
	a, err := netip.ParseAddr(sa.GetAddress())
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("socket_address.address %q: %w", sa.GetAddress(), err)
	}
	if sa.GetPortValue() > math.MaxUint16 {
		return netip.AddrPort{}, fmt.Errorf("socket_address.port_value %d: not a port", sa.GetPortValue())
	}
	return netip.AddrPortFrom(a, uint16(sa.GetPortValue())), nil
}

func endpointAddresses(c *clusterv3.Cluster) []*corev3.Address {
	var out []*corev3.Address
	for _, e := range c.GetLoadAssignment().GetEndpoints() {
		for _, lb := range e.GetLbEndpoints() {
			out = append(out, lb.GetEndpoint().GetAddress())
		}
	}
	return out
}

func firstEndpoint(c *clusterv3.Cluster) netip.AddrPort {
	for _, a := range endpointAddresses(c) {
		if sa := a.GetSocketAddress(); sa != nil {
			if ap, err := addrPortOf(sa); err == nil {
				return ap
			}
		}
	}
	return netip.AddrPort{}
}

func firstPipe(c *clusterv3.Cluster) string {
	for _, a := range endpointAddresses(c) {
		if p := a.GetPipe().GetPath(); p != "" {
			return p
		}
	}
	return ""
}

// staticHTTPListener reports ok=false for listeners the stand-in does not serve: TLS filter chains, or no
// HTTP routes at all.
func staticHTTPListener(l *listenerv3.Listener, clusters map[string]netip.AddrPort) (httpListener, bool, error) {
	hl := httpListener{name: l.GetName()}
	if l.GetAddress().GetSocketAddress() == nil {
		return hl, false, fmt.Errorf("address.socket_address missing")
	}
	addrs := []*corev3.Address{l.GetAddress()}
	for _, a := range l.GetAdditionalAddresses() {
		addrs = append(addrs, a.GetAddress())
	}
	for _, a := range addrs {
		if a.GetSocketAddress() == nil {
			continue
		}
		ap, err := addrPortOf(a.GetSocketAddress())
		if err != nil {
			return hl, false, err
		}
		hl.addrs = append(hl.addrs, ap)
	}
	for _, fc := range l.GetFilterChains() {
		if fc.GetTransportSocket() != nil {
			return hl, false, nil
		}
		for _, f := range fc.GetFilters() {
			var hcm hcmv3.HttpConnectionManager
			if f.GetTypedConfig().UnmarshalTo(&hcm) != nil {
				continue
			}
			hl.routes = append(hl.routes, hcmRoutes(&hcm, clusters)...)
		}
	}
	return hl, len(hl.routes) > 0, nil
}

func hcmRoutes(hcm *hcmv3.HttpConnectionManager, clusters map[string]netip.AddrPort) []route {
	var out []route
	for _, vh := range hcm.GetRouteConfig().GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			cluster := r.GetRoute().GetCluster()
			out = append(out, route{prefix: r.GetMatch().GetPrefix(), cluster: cluster, upstream: clusters[cluster]})
		}
	}
	return out
}
