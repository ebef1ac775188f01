package main

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/istio-sidecar/istio-sidecar/testdoubles/standin-envoy/xds"
)

// The shapes below are istiod's (pilot/pkg/networking/core listener.go, httproute.go) for a ServiceEntry
// b.default.svc.cluster.local with address 240.240.0.5, TCP port 9090 and HTTP port 8080.
const (
	seVIP      = "240.240.0.5"
	tcpCluster = "outbound|9090||b.default.svc.cluster.local"
	webCluster = "outbound|8080||b.default.svc.cluster.local"
)

func tcpProxyFilter(cluster string) *listenerv3.Filter {
	return &listenerv3.Filter{Name: "envoy.filters.network.tcp_proxy", ConfigType: &listenerv3.Filter_TypedConfig{
		TypedConfig: mustAny(&tcpv3.TcpProxy{StatPrefix: cluster, ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: cluster}})}}
}

func rdsFilter(routeName string) *listenerv3.Filter {
	hcm := &hcmv3.HttpConnectionManager{StatPrefix: "outbound_0.0.0.0_" + routeName, RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{
		Rds: &hcmv3.Rds{RouteConfigName: routeName}}}
	return &listenerv3.Filter{Name: "envoy.filters.network.http_connection_manager",
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(hcm)}}
}

// passthroughChain is the default chain istiod gives an outbound listener whose chains all match on something.
func passthroughChain() *listenerv3.FilterChain {
	return &listenerv3.FilterChain{Name: "PassthroughFilterChain", FilterChainMatch: &listenerv3.FilterChainMatch{},
		Filters: []*listenerv3.Filter{tcpProxyFilter(passthroughCluster)}}
}

// httpChain is the HTTP chain of a sniffed or wildcard HTTP listener: it matches what http_inspector detects.
func httpChain(routeName string) *listenerv3.FilterChain {
	return &listenerv3.FilterChain{
		FilterChainMatch: &listenerv3.FilterChainMatch{TransportProtocol: "raw_buffer", ApplicationProtocols: []string{"http/1.1", "http/1.0", "h2c"}},
		Filters:          []*listenerv3.Filter{rdsFilter(routeName)}}
}

func outboundListener(addr string, port uint32, chains ...*listenerv3.FilterChain) *listenerv3.Listener {
	return &listenerv3.Listener{Name: fmt.Sprintf("%s_%d", addr, port),
		Address: socketAddress(addr, port), BindToPort: wrapperspb.Bool(false),
		TrafficDirection: corev3.TrafficDirection_OUTBOUND, FilterChains: chains}
}

func vhost(name, cluster string, domains ...string) *routev3.VirtualHost {
	return &routev3.VirtualHost{Name: name, Domains: domains, Routes: []*routev3.Route{{
		Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster}}}}}}
}

func edsCluster(name string) *clusterv3.Cluster {
	return &clusterv3.Cluster{Name: name, ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{ServiceName: name}}
}

type lbEP struct {
	addr     string
	port     uint32
	health   corev3.HealthStatus
	priority uint32
}

func assignment(cluster string, eps ...lbEP) *endpointv3.ClusterLoadAssignment {
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: cluster}
	for _, e := range eps {
		cla.Endpoints = append(cla.Endpoints, &endpointv3.LocalityLbEndpoints{Priority: e.priority, LbEndpoints: []*endpointv3.LbEndpoint{{
			HealthStatus: e.health,
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address: socketAddress(e.addr, e.port)}}}}})
	}
	return cla
}

// istiodSnapshot is what istiod sends for the ServiceEntry, plus the capture listener and Istio's static
// clusters, with extra resources appended.
func istiodSnapshot(extra ...proto.Message) xds.Snapshot {
	virtualOutbound := &listenerv3.Listener{Name: "virtualOutbound", Address: socketAddress("0.0.0.0", 15001),
		UseOriginalDst: wrapperspb.Bool(true), FilterChains: []*listenerv3.FilterChain{passthroughChain()}}
	// virtualInbound's chains match on ports and end in InboundPassthroughCluster, as istiod's do.
	virtualInbound := &listenerv3.Listener{Name: "virtualInbound", Address: socketAddress("0.0.0.0", 15006),
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{tcpProxyFilter(inboundPassthroughCluster)}}}}
	tcp := outboundListener(seVIP, 9090, &listenerv3.FilterChain{Filters: []*listenerv3.Filter{tcpProxyFilter(tcpCluster)}})
	web := outboundListener("0.0.0.0", 8080, httpChain("8080"))
	web.DefaultFilterChain = passthroughChain()
	routes := &routev3.RouteConfiguration{Name: "8080", IgnorePortInHostMatching: true, VirtualHosts: []*routev3.VirtualHost{
		vhost("b.default.svc.cluster.local:8080", webCluster, "b.default.svc.cluster.local", "b", "b.default", seVIP),
		vhost("allow_any", passthroughCluster, "*"),
	}}
	msgs := []proto.Message{virtualOutbound, virtualInbound, tcp, web, routes,
		&clusterv3.Cluster{Name: passthroughCluster, ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST}},
		&clusterv3.Cluster{Name: "BlackHoleCluster", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}},
		edsCluster(tcpCluster), edsCluster(webCluster),
		assignment(tcpCluster, lbEP{addr: "10.213.0.3", port: 25431}),
		assignment(webCluster, lbEP{addr: "10.213.0.4", port: 28080, health: corev3.HealthStatus_HEALTHY}),
	}
	return snapshotOf(append(msgs, extra...)...)
}

// snapshotOf files each message under its type; a later message of the same name replaces an earlier one.
func snapshotOf(msgs ...proto.Message) xds.Snapshot {
	var snap xds.Snapshot
	put := func(list *[]xds.Entry, name string, m proto.Message) {
		*list = slices.DeleteFunc(*list, func(e xds.Entry) bool { return e.Name == name })
		*list = append(*list, xds.Entry{Name: name, Resource: m})
	}
	for _, m := range msgs {
		switch r := m.(type) {
		case *listenerv3.Listener:
			put(&snap.Listeners, r.GetName(), r)
		case *routev3.RouteConfiguration:
			put(&snap.Routes, r.GetName(), r)
		case *clusterv3.Cluster:
			put(&snap.Clusters, r.GetName(), r)
		case *endpointv3.ClusterLoadAssignment:
			put(&snap.Endpoints, r.GetClusterName(), r)
		}
	}
	return snap
}

func TestRouteOutbound(t *testing.T) {
	cidrListener := outboundListener("0.0.0.0", 5432,
		&listenerv3.FilterChain{FilterChainMatch: &listenerv3.FilterChainMatch{PrefixRanges: []*corev3.CidrRange{
			{AddressPrefix: "10.50.0.0", PrefixLen: wrapperspb.UInt32(16)}}},
			Filters: []*listenerv3.Filter{tcpProxyFilter("outbound|5432||wide.example")}},
		&listenerv3.FilterChain{FilterChainMatch: &listenerv3.FilterChainMatch{PrefixRanges: []*corev3.CidrRange{
			{AddressPrefix: "10.50.7.0", PrefixLen: wrapperspb.UInt32(24)}}},
			Filters: []*listenerv3.Filter{tcpProxyFilter("outbound|5432||narrow.example")}})
	cidrListener.DefaultFilterChain = passthroughChain()
	// A port without a protocol is sniffed: the VIP's listener has a TCP default chain and an HTTP chain whose
	// route configuration is named after the service and holds only its virtual host, as "*".
	sniffed := outboundListener(seVIP, 7070, httpChain("b.default.svc.cluster.local:7070"))
	sniffed.DefaultFilterChain = &listenerv3.FilterChain{Filters: []*listenerv3.Filter{tcpProxyFilter("outbound|7070||b.default.svc.cluster.local")}}
	sniffedRoutes := &routev3.RouteConfiguration{Name: "b.default.svc.cluster.local:7070", VirtualHosts: []*routev3.VirtualHost{
		vhost("b.default.svc.cluster.local:7070", "outbound|7070||b.default.svc.cluster.local", "*")}}
	weighted := outboundListener("240.240.0.9", 9090, &listenerv3.FilterChain{Filters: []*listenerv3.Filter{{
		Name: "envoy.filters.network.tcp_proxy", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(&tcpv3.TcpProxy{
			StatPrefix: "w", ClusterSpecifier: &tcpv3.TcpProxy_WeightedClusters{WeightedClusters: &tcpv3.TcpProxy_WeightedCluster{
				Clusters: []*tcpv3.TcpProxy_WeightedCluster_ClusterWeight{{Name: "outbound|9090|v1|w", Weight: 90}, {Name: "outbound|9090|v2|w", Weight: 10}}}}})}}}})
	v6 := outboundListener("0.0.0.0", 8080, httpChain("8080"))
	v6.AdditionalAddresses = []*listenerv3.AdditionalAddress{{Address: socketAddress("::", 8080)}}
	v6.DefaultFilterChain = passthroughChain()
	v6Routes := &routev3.RouteConfiguration{Name: "8080", VirtualHosts: []*routev3.VirtualHost{
		vhost("v6:8080", webCluster, "v6.example", "[2001:db8::5]"), vhost("allow_any", passthroughCluster, "*")}}
	withPort := &routev3.RouteConfiguration{Name: "8080", VirtualHosts: []*routev3.VirtualHost{
		vhost("b:8080", webCluster, "b.default.svc.cluster.local:8080", seVIP+":8080"), vhost("allow_any", passthroughCluster, "*")}}
	static := &clusterv3.Cluster{Name: "outbound|5432||narrow.example", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		LoadAssignment: assignment("outbound|5432||narrow.example", lbEP{addr: "10.50.7.100", port: 5432})}
	warming := outboundListener("240.240.0.8", 9090, &listenerv3.FilterChain{Filters: []*listenerv3.Filter{tcpProxyFilter(tcpCluster)}})

	tests := []struct {
		name        string
		dst         string
		snap        xds.Snapshot
		wantCluster string
		wantEPs     []string
		wantErr     bool
	}{
		{name: "TCP port: the VIP's listener's tcp_proxy", dst: seVIP + ":9090", snap: istiodSnapshot(),
			wantCluster: tcpCluster, wantEPs: []string{"10.213.0.3:25431"}},
		{name: "HTTP port: 0.0.0.0_8080, RDS 8080, the virtual host listing the VIP", dst: seVIP + ":8080", snap: istiodSnapshot(),
			wantCluster: webCluster, wantEPs: []string{"10.213.0.4:28080"}},
		{name: "HTTP port: a domain with the port", dst: seVIP + ":8080", snap: istiodSnapshot(withPort),
			wantCluster: webCluster, wantEPs: []string{"10.213.0.4:28080"}},
		{name: "HTTP port, an address no service has: allow_any", dst: "10.9.9.9:8080", snap: istiodSnapshot(),
			wantCluster: passthroughCluster, wantEPs: []string{"10.9.9.9:8080"}},
		{name: "a port with no listener: virtualOutbound's passthrough", dst: seVIP + ":1234", snap: istiodSnapshot()},
		{name: "another address on a TCP port with only a VIP listener", dst: "10.9.9.9:9090", snap: istiodSnapshot()},
		{name: "the capture listeners' ports are no route", dst: "10.9.9.9:15001", snap: istiodSnapshot()},
		{name: "an outbound connection to port 15006 is no inbound one", dst: "10.9.9.9:15006", snap: istiodSnapshot()},
		{name: "no control plane's listeners at all", dst: seVIP + ":9090", snap: xds.Snapshot{}},
		{name: "EDS has no assignment: no healthy upstream", dst: seVIP + ":9090", wantCluster: tcpCluster, wantErr: true,
			snap: snapshotOf(append(entriesOf(istiodSnapshot()), &endpointv3.ClusterLoadAssignment{ClusterName: "other"})...)},
		{name: "only unhealthy endpoints: no healthy upstream", dst: seVIP + ":9090", wantCluster: tcpCluster, wantErr: true,
			snap: istiodSnapshot(assignment(tcpCluster, lbEP{addr: "10.213.0.3", port: 25431, health: corev3.HealthStatus_UNHEALTHY},
				lbEP{addr: "10.213.0.5", port: 25431, health: corev3.HealthStatus_DRAINING}))},
		{name: "healthy and unknown endpoints are used, unhealthy ones not", dst: seVIP + ":9090", wantCluster: tcpCluster,
			snap: istiodSnapshot(assignment(tcpCluster, lbEP{addr: "10.213.0.3", port: 1, health: corev3.HealthStatus_UNHEALTHY},
				lbEP{addr: "10.213.0.4", port: 2, health: corev3.HealthStatus_HEALTHY}, lbEP{addr: "10.213.0.5", port: 3})),
			wantEPs: []string{"10.213.0.4:2", "10.213.0.5:3"}},
		{name: "a lower priority only when the highest has no healthy endpoint", dst: seVIP + ":9090", wantCluster: tcpCluster,
			snap: istiodSnapshot(assignment(tcpCluster, lbEP{addr: "10.213.0.3", port: 1, priority: 1},
				lbEP{addr: "10.213.0.4", port: 2, health: corev3.HealthStatus_UNHEALTHY}, lbEP{addr: "10.213.0.5", port: 3, priority: 2})),
			wantEPs: []string{"10.213.0.3:1"}},
		{name: "a cluster not in CDS: no healthy upstream", dst: "240.240.0.9:9090", snap: istiodSnapshot(weighted),
			wantCluster: "outbound|9090|v1|w", wantErr: true},
		{name: "CIDR chains: the longest prefix", dst: "10.50.7.1:5432", snap: istiodSnapshot(cidrListener, static),
			wantCluster: "outbound|5432||narrow.example", wantEPs: []string{"10.50.7.100:5432"}},
		{name: "CIDR chains: outside every prefix, the default chain", dst: "10.51.0.1:5432", snap: istiodSnapshot(cidrListener),
			wantCluster: passthroughCluster, wantEPs: []string{"10.51.0.1:5432"}},
		{name: "sniffed port: the HTTP chain's own route configuration", dst: seVIP + ":7070",
			snap: istiodSnapshot(sniffed, sniffedRoutes, edsCluster("outbound|7070||b.default.svc.cluster.local"),
				assignment("outbound|7070||b.default.svc.cluster.local", lbEP{addr: "10.213.0.6", port: 27070})),
			wantCluster: "outbound|7070||b.default.svc.cluster.local", wantEPs: []string{"10.213.0.6:27070"}},
		{name: "IPv6: the wildcard's additional address, a bracketed domain", dst: "[2001:db8::5]:8080",
			snap: istiodSnapshot(v6, v6Routes), wantCluster: webCluster, wantEPs: []string{"10.213.0.4:28080"}},
		{name: "a warming listener is not used", dst: "240.240.0.8:9090", snap: withWarming(istiodSnapshot(warming), warming.Name)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cluster, eps, err := routeOutbound(tt.snap, netip.MustParseAddrPort(tt.dst))
			if cluster != tt.wantCluster || !slices.Equal(eps, tt.wantEPs) || (err != nil) != tt.wantErr {
				t.Errorf("routeOutbound(%s) = %q, %q, %v; want %q, %q, error %v", tt.dst, cluster, eps, err,
					tt.wantCluster, tt.wantEPs, tt.wantErr)
			}
		})
	}
}

func entriesOf(s xds.Snapshot) []proto.Message {
	var out []proto.Message
	for _, list := range [][]xds.Entry{s.Listeners, s.Routes, s.Clusters} {
		for _, e := range list {
			out = append(out, e.Resource)
		}
	}
	return out
}

func withWarming(s xds.Snapshot, listener string) xds.Snapshot {
	for i := range s.Listeners {
		s.Listeners[i].Warming = s.Listeners[i].Name == listener
	}
	return s
}

func TestRoundRobin(t *testing.T) {
	var rr roundRobin
	eps := []string{"10.0.0.1:1", "10.0.0.2:2", "10.0.0.3:3"}
	var got []string
	for range 4 {
		got = append(got, rr.pick("a", eps))
	}
	got = append(got, rr.pick("b", eps[:2]), rr.pick("a", eps[:2]))
	want := []string{"10.0.0.1:1", "10.0.0.2:2", "10.0.0.3:3", "10.0.0.1:1", "10.0.0.1:1", "10.0.0.2:2"}
	if !slices.Equal(got, want) {
		t.Errorf("picks = %q, want %q", got, want)
	}
}
