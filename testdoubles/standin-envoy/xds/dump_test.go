package xds

import (
	"slices"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/encoding/protojson"
)

// dumpJSON is a config_dump as Envoy's admin prints it: every section, and one cluster carrying a typed config
// no registered message describes (printed as its @type only). FUTURE marks where a test may put a listener
// field this API does not know.
const dumpJSON = `{"configs": [
 {"@type": "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump", "bootstrap": {"node": {"id": "sidecar~10.0.0.1~a.default~default.svc.cluster.local"}}},
 {"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump", "dynamic_active_clusters": [{"cluster": {
   "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": "inbound|8080||",
   "transport_socket": {"name": "tls", "typed_config": {"@type": "type.googleapis.com/example.Unregistered"}}}}]},
 {"@type": "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump", "dynamic_endpoint_configs": [{"endpoint_config": {
   "@type": "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment", "cluster_name": "outbound|8080||b.default.svc.cluster.local"}}]},
 {"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump", "dynamic_listeners": [{"name": "virtualInbound", FUTURE}]},
 {"@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump", "dynamic_route_configs": [{"route_config": {
   "@type": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration", "name": "8080"}}]},
 {"@type": "type.googleapis.com/envoy.admin.v3.SecretsConfigDump", "dynamic_active_secrets": [{"name": "default"}]}
]}`

func TestDecodeDumpSections(t *testing.T) {
	r := NewResolver()
	d, err := DecodeDump([]byte(strings.Replace(dumpJSON, ", FUTURE", "", 1)), protojson.UnmarshalOptions{Resolver: r})
	if err != nil {
		t.Fatal(err)
	}
	var c clusterv3.Cluster
	if cs := d.Clusters.GetDynamicActiveClusters(); len(cs) != 1 || cs[0].GetCluster().UnmarshalTo(&c) != nil || c.GetName() != "inbound|8080||" {
		t.Errorf("clusters = %v", d.Clusters.GetDynamicActiveClusters())
	}
	var cla endpointv3.ClusterLoadAssignment
	if es := d.Endpoints.GetDynamicEndpointConfigs(); len(es) != 1 || es[0].GetEndpointConfig().UnmarshalTo(&cla) != nil ||
		cla.GetClusterName() != "outbound|8080||b.default.svc.cluster.local" {
		t.Errorf("endpoints = %v", d.Endpoints.GetDynamicEndpointConfigs())
	}
	if ls := d.Listeners.GetDynamicListeners(); len(ls) != 1 || ls[0].GetName() != "virtualInbound" {
		t.Errorf("listeners = %v", ls)
	}
	var rc routev3.RouteConfiguration
	if rs := d.Routes.GetDynamicRouteConfigs(); len(rs) != 1 || rs[0].GetRouteConfig().UnmarshalTo(&rc) != nil || rc.GetName() != "8080" {
		t.Errorf("routes = %v", d.Routes.GetDynamicRouteConfigs())
	}
	if ss := d.Secrets.GetDynamicActiveSecrets(); len(ss) != 1 || ss[0].GetName() != "default" {
		t.Errorf("secrets = %v", ss)
	}
	if missing := r.Missing(); !slices.Equal(missing, []string{"type.googleapis.com/example.Unregistered"}) {
		t.Errorf("resolver missed %v, want only the unregistered typed config", missing)
	}
}

// An unknown field fails a strict decode (the stand-in's own tests: it prints only Envoy's API) and is dropped
// by DiscardUnknown (a proxy whose API may be newer than this package's).
func TestDecodeDumpUnknownField(t *testing.T) {
	body := []byte(strings.Replace(dumpJSON, "FUTURE", `"future_field": 1`, 1))
	if _, err := DecodeDump(body, protojson.UnmarshalOptions{Resolver: NewResolver()}); err == nil ||
		!strings.Contains(err.Error(), "future_field") {
		t.Errorf("strict decode: err = %v, want one naming future_field", err)
	}
	d, err := DecodeDump(body, protojson.UnmarshalOptions{Resolver: NewResolver(), DiscardUnknown: true})
	if err != nil {
		t.Fatal(err)
	}
	if ls := d.Listeners.GetDynamicListeners(); len(ls) != 1 || ls[0].GetName() != "virtualInbound" {
		t.Errorf("listeners = %v", ls)
	}
}
