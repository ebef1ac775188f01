package harness

import (
	"net/netip"
	"reflect"
	"testing"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	httprbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	netrbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func mustPack(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func lbEndpoint(addr string, port uint32, h corev3.HealthStatus) *endpointv3.LbEndpoint {
	return &endpointv3.LbEndpoint{HealthStatus: h, HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: addr, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}}}}
}

// sampleDump is a dump as the stand-in (or Envoy) prints it: two clusters, B's endpoints (one unhealthy),
// and an inbound listener with an mTLS chain enforcing a network and an HTTP RBAC policy.
func sampleDump(t *testing.T) []byte {
	t.Helper()
	const b = "outbound|8080||b.default.svc.cluster.local"
	clusters := &adminv3.ClustersConfigDump{DynamicActiveClusters: []*adminv3.ClustersConfigDump_DynamicCluster{
		{Cluster: mustPack(t, &clusterv3.Cluster{Name: b})},
		{Cluster: mustPack(t, &clusterv3.Cluster{Name: "inbound|8080||"})},
	}}
	eps := &adminv3.EndpointsConfigDump{DynamicEndpointConfigs: []*adminv3.EndpointsConfigDump_DynamicEndpointConfig{
		{EndpointConfig: mustPack(t, &endpointv3.ClusterLoadAssignment{ClusterName: b, Endpoints: []*endpointv3.LocalityLbEndpoints{{
			LbEndpoints: []*endpointv3.LbEndpoint{lbEndpoint("10.213.0.3", 25001, corev3.HealthStatus_HEALTHY),
				lbEndpoint("10.213.0.2", 24000, corev3.HealthStatus_UNHEALTHY)}}}})},
	}}
	rules := &rbacv3.RBAC{Policies: map[string]*rbacv3.Policy{"ns[default]-policy[allow-a]-rule[0]": {}}}
	hcm := &hcmv3.HttpConnectionManager{HttpFilters: []*hcmv3.HttpFilter{{Name: "envoy.filters.http.rbac",
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustPack(t, &httprbacv3.RBAC{Rules: rules})}}}}
	chain := &listenerv3.FilterChain{Name: "0.0.0.0_8080",
		FilterChainMatch: &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(8080), TransportProtocol: "tls"},
		TransportSocket: &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{
			TypedConfig: mustPack(t, &tlsv3.DownstreamTlsContext{RequireClientCertificate: wrapperspb.Bool(true)})}},
		Filters: []*listenerv3.Filter{
			{Name: "envoy.filters.network.rbac", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustPack(t, &netrbacv3.RBAC{Rules: rules})}},
			{Name: "envoy.filters.network.http_connection_manager", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustPack(t, hcm)}},
		}}
	listeners := &adminv3.ListenersConfigDump{DynamicListeners: []*adminv3.ListenersConfigDump_DynamicListener{{Name: "virtualInbound",
		ActiveState: &adminv3.ListenersConfigDump_DynamicListenerState{Listener: mustPack(t, &listenerv3.Listener{Name: "virtualInbound",
			FilterChains: []*listenerv3.FilterChain{chain, {Name: "passthrough"}}})}}}}
	dump := &adminv3.ConfigDump{Configs: []*anypb.Any{mustPack(t, clusters), mustPack(t, eps), mustPack(t, listeners)}}
	body, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(dump)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

func TestParseConfigDump(t *testing.T) {
	d, err := ParseConfigDump(sampleDump(t))
	if err != nil {
		t.Fatal(err)
	}
	const b = "outbound|8080||b.default.svc.cluster.local"
	if got := d.ClusterNames(); !reflect.DeepEqual(got, []string{"inbound|8080||", b}) || !d.HasCluster(b) {
		t.Errorf("clusters %v", got)
	}
	if got := d.ClusterEndpoints(b); len(got) != 2 || got[0].Addr != netip.MustParseAddrPort("10.213.0.2:24000") {
		t.Errorf("endpoints %v", got)
	}
	if got := d.EndpointAddrs(b); !reflect.DeepEqual(got, []netip.AddrPort{netip.MustParseAddrPort("10.213.0.3:25001")}) {
		t.Errorf("healthy endpoints %v", got)
	}
	chains, err := d.FilterChains("virtualInbound")
	if err != nil {
		t.Fatal(err)
	}
	want := []FilterChain{
		{Name: "0.0.0.0_8080", DestinationPort: 8080, TransportProtocol: "tls", TLS: true, RequireClientCert: true,
			RBACPolicies: []string{"ns[default]-policy[allow-a]-rule[0]", "ns[default]-policy[allow-a]-rule[0]"}},
		{Name: "passthrough"},
	}
	if !reflect.DeepEqual(chains, want) {
		t.Errorf("chains\n%+v\nwant\n%+v", chains, want)
	}
	if _, err := d.FilterChains("virtualOutbound"); err == nil {
		t.Error("a missing listener is an error")
	}
}
