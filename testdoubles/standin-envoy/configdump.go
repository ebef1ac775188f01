package main

import (
	"bytes"
	"encoding/json"
	"net/http"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/istio-sidecar/istio-sidecar/testdoubles/standin-envoy/xds"
)

// anyResolver prints every typed config the stand-in knows in full and keeps the @type of the others.
var anyResolver = xds.NewResolver()

// dumpJSON is Envoy's admin JSON: proto field names (snake_case).
var dumpJSON = protojson.MarshalOptions{UseProtoNames: true, Resolver: anyResolver}

// adminJSON prints m as Envoy's admin API does, indented with one space after each colon. protojson varies its
// whitespace from run to run on purpose; encoding/json's Indent lays it out anew, so that a reader that matches
// text (as pilot-agent's users and our tests do) sees what Envoy prints.
func adminJSON(m proto.Message) ([]byte, error) {
	compact, err := dumpJSON.Marshal(m)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, compact, "", " "); err != nil {
		return nil, err
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

// handleConfigDump serves envoy.admin.v3.ConfigDump as Envoy does: bootstrap, clusters, listeners, routes and
// secrets (keys redacted), and the endpoints only when asked with ?include_eds.
func (p *proxy) handleConfigDump(w http.ResponseWriter, r *http.Request) {
	snap := p.snapshot()
	msgs := []proto.Message{
		&adminv3.BootstrapConfigDump{Bootstrap: p.boot.proto, LastUpdated: timestamppb.New(p.started)},
		p.clustersDump(snap),
	}
	if r.URL.Query().Has("include_eds") {
		msgs = append(msgs, p.endpointsDump(snap))
	}
	msgs = append(msgs, p.listenersDump(snap), p.routesDump(snap), secretsDump(snap))
	dump := &adminv3.ConfigDump{}
	for _, m := range msgs {
		a, err := anypb.New(m)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		dump.Configs = append(dump.Configs, a)
	}
	out, err := adminJSON(dump)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out)
}

// snapshot is what the control plane gave, or with none the capture listeners the stand-in opened itself,
// shown as the virtualOutbound and virtualInbound listeners istiod would have sent.
func (p *proxy) snapshot() xds.Snapshot {
	if c := p.xdsClient(); c != nil {
		return c.Snapshot()
	}
	snap := xds.Snapshot{Versions: map[string]string{}}
	for _, t := range p.boundListeners() {
		l := &listenerv3.Listener{
			Name:           t.envoyName,
			Address:        socketAddress("0.0.0.0", uint32(t.port)),
			UseOriginalDst: wrapperspb.Bool(true),
		}
		snap.Listeners = append(snap.Listeners, xds.Entry{Name: t.envoyName, Resource: l, LastUpdated: p.started})
	}
	return snap
}

func socketAddress(addr string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: addr, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}
}

// mustAny packs a message the stand-in built or decoded itself, which always packs.
func mustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(err)
	}
	return a
}

func (p *proxy) clustersDump(snap xds.Snapshot) *adminv3.ClustersConfigDump {
	d := &adminv3.ClustersConfigDump{VersionInfo: snap.Versions[xds.ClusterType]}
	started := timestamppb.New(p.started)
	for _, c := range p.boot.proto.GetStaticResources().GetClusters() {
		d.StaticClusters = append(d.StaticClusters, &adminv3.ClustersConfigDump_StaticCluster{Cluster: mustAny(c), LastUpdated: started})
	}
	for _, e := range snap.Clusters {
		dc := &adminv3.ClustersConfigDump_DynamicCluster{VersionInfo: e.Version, Cluster: mustAny(e.Resource),
			LastUpdated: timestamppb.New(e.LastUpdated)}
		if e.Warming {
			d.DynamicWarmingClusters = append(d.DynamicWarmingClusters, dc)
		} else {
			d.DynamicActiveClusters = append(d.DynamicActiveClusters, dc)
		}
	}
	return d
}

func (p *proxy) endpointsDump(snap xds.Snapshot) *adminv3.EndpointsConfigDump {
	d := &adminv3.EndpointsConfigDump{}
	started := timestamppb.New(p.started)
	for _, c := range p.boot.proto.GetStaticResources().GetClusters() {
		if cla := staticAssignment(c); cla != nil {
			d.StaticEndpointConfigs = append(d.StaticEndpointConfigs,
				&adminv3.EndpointsConfigDump_StaticEndpointConfig{EndpointConfig: mustAny(cla), LastUpdated: started})
		}
	}
	for _, e := range snap.Endpoints {
		d.DynamicEndpointConfigs = append(d.DynamicEndpointConfigs, &adminv3.EndpointsConfigDump_DynamicEndpointConfig{
			VersionInfo: e.Version, EndpointConfig: mustAny(e.Resource), LastUpdated: timestamppb.New(e.LastUpdated)})
	}
	return d
}

// staticAssignment is a static cluster's load assignment named after the cluster, as Envoy dumps it.
func staticAssignment(c *clusterv3.Cluster) *endpointv3.ClusterLoadAssignment {
	if c.GetLoadAssignment() == nil {
		return nil
	}
	cla := proto.Clone(c.GetLoadAssignment()).(*endpointv3.ClusterLoadAssignment)
	if cla.ClusterName == "" {
		cla.ClusterName = c.GetName()
	}
	return cla
}

func (p *proxy) listenersDump(snap xds.Snapshot) *adminv3.ListenersConfigDump {
	d := &adminv3.ListenersConfigDump{VersionInfo: snap.Versions[xds.ListenerType]}
	started := timestamppb.New(p.started)
	for _, l := range p.boot.proto.GetStaticResources().GetListeners() {
		d.StaticListeners = append(d.StaticListeners, &adminv3.ListenersConfigDump_StaticListener{Listener: mustAny(l), LastUpdated: started})
	}
	for _, e := range snap.Listeners {
		state := &adminv3.ListenersConfigDump_DynamicListenerState{VersionInfo: e.Version, Listener: mustAny(e.Resource),
			LastUpdated: timestamppb.New(e.LastUpdated)}
		dl := &adminv3.ListenersConfigDump_DynamicListener{Name: e.Name, ActiveState: state}
		if e.Warming {
			dl.ActiveState, dl.WarmingState = nil, state
		}
		d.DynamicListeners = append(d.DynamicListeners, dl)
	}
	return d
}

// routesDump: the route configurations inline in the bootstrap's listeners are Envoy's static ones.
func (p *proxy) routesDump(snap xds.Snapshot) *adminv3.RoutesConfigDump {
	d := &adminv3.RoutesConfigDump{}
	started := timestamppb.New(p.started)
	for _, rc := range inlineRoutes(p.boot.proto.GetStaticResources().GetListeners()) {
		d.StaticRouteConfigs = append(d.StaticRouteConfigs, &adminv3.RoutesConfigDump_StaticRouteConfig{RouteConfig: mustAny(rc), LastUpdated: started})
	}
	for _, e := range snap.Routes {
		d.DynamicRouteConfigs = append(d.DynamicRouteConfigs, &adminv3.RoutesConfigDump_DynamicRouteConfig{
			VersionInfo: e.Version, RouteConfig: mustAny(e.Resource), LastUpdated: timestamppb.New(e.LastUpdated)})
	}
	return d
}

func inlineRoutes(ls []*listenerv3.Listener) []*routev3.RouteConfiguration {
	var out []*routev3.RouteConfiguration
	for _, l := range ls {
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				var hcm hcmv3.HttpConnectionManager
				if f.GetTypedConfig().UnmarshalTo(&hcm) == nil && hcm.GetRouteConfig() != nil {
					out = append(out, hcm.GetRouteConfig())
				}
			}
		}
	}
	return out
}
