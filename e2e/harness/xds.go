package harness

import (
	"fmt"
	"net/netip"
	"sort"

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

	"github.com/istio-sidecar/istio-sidecar/testdoubles/standin-envoy/xds"
)

// Reading what a proxy was given, as a test of a real Envoy would: its /config_dump?include_eds decoded into
// go-control-plane's admin types. The stand-in's xds package registers the typed configs istiod sends, and its
// resolver keeps any other typed config as its @type, so one unknown extension does not fail the whole dump.

var dumpResolver = xds.NewResolver()

// ConfigDump is one /config_dump?include_eds, split by section, with the questions e2e tests ask of it.
type ConfigDump struct {
	*xds.Dump
}

// FetchConfigDump reads the config_dump, endpoints included, of the proxy in a bridge-mode allocation, from
// inside its network namespace (Envoy's admin port listens on the namespace's loopback only).
func FetchConfigDump(allocID string) (*ConfigDump, error) {
	out, err := InNetns(NetnsPath(allocID), "curl", "-sf", "--max-time", "3", "http://127.0.0.1:15000/config_dump?include_eds")
	if err != nil {
		return nil, err
	}
	return ParseConfigDump([]byte(out))
}

// ParseConfigDump decodes Envoy's admin JSON of a ConfigDump. It drops fields go-control-plane does not know:
// an Envoy newer than it prints some.
func ParseConfigDump(body []byte) (*ConfigDump, error) {
	d, err := xds.DecodeDump(body, protojson.UnmarshalOptions{Resolver: dumpResolver, DiscardUnknown: true})
	if err != nil {
		return nil, err
	}
	return &ConfigDump{Dump: d}, nil
}

// ClusterNames lists the active dynamic clusters' names (istiod's outbound|<port>|<subset>|<host>,
// inbound|<port>||), sorted.
func (d *ConfigDump) ClusterNames() []string {
	var names []string
	for _, dc := range d.Clusters.GetDynamicActiveClusters() {
		var c clusterv3.Cluster
		if dc.GetCluster().UnmarshalTo(&c) == nil {
			names = append(names, c.GetName())
		}
	}
	sort.Strings(names)
	return names
}

// HasCluster reports whether an active dynamic cluster has that name.
func (d *ConfigDump) HasCluster(name string) bool {
	for _, n := range d.ClusterNames() {
		if n == name {
			return true
		}
	}
	return false
}

// Endpoint is one endpoint of a cluster as EDS gave it.
type Endpoint struct {
	Addr   netip.AddrPort
	Health corev3.HealthStatus
}

// ClusterEndpoints returns the endpoints EDS gave for the cluster, sorted by address.
func (d *ConfigDump) ClusterEndpoints(cluster string) []Endpoint {
	var out []Endpoint
	for _, dc := range d.Endpoints.GetDynamicEndpointConfigs() {
		var cla endpointv3.ClusterLoadAssignment
		if dc.GetEndpointConfig().UnmarshalTo(&cla) != nil || cla.GetClusterName() != cluster {
			continue
		}
		for _, loc := range cla.GetEndpoints() {
			for _, lb := range loc.GetLbEndpoints() {
				sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
				addr, err := netip.ParseAddr(sa.GetAddress())
				if err != nil {
					continue // a pipe or an internal address: not a network endpoint
				}
				out = append(out, Endpoint{Addr: netip.AddrPortFrom(addr, uint16(sa.GetPortValue())), Health: lb.GetHealthStatus()})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Addr.Compare(out[j].Addr) < 0 })
	return out
}

// EndpointAddrs returns the addresses of the cluster's endpoints not marked unhealthy or draining: the ones
// Envoy would balance over.
func (d *ConfigDump) EndpointAddrs(cluster string) []netip.AddrPort {
	var out []netip.AddrPort
	for _, e := range d.ClusterEndpoints(cluster) {
		if e.Health != corev3.HealthStatus_UNHEALTHY && e.Health != corev3.HealthStatus_DRAINING {
			out = append(out, e.Addr)
		}
	}
	return out
}

// Listener returns the active dynamic listener of that name (virtualInbound, virtualOutbound, 0.0.0.0_8080, …).
func (d *ConfigDump) Listener(name string) (*listenerv3.Listener, bool) {
	for _, dl := range d.Listeners.GetDynamicListeners() {
		var l listenerv3.Listener
		if dl.GetName() == name && dl.GetActiveState().GetListener().UnmarshalTo(&l) == nil {
			return &l, true
		}
	}
	return nil, false
}

// FilterChain is what a test asks of one filter chain: what it matches, whether it terminates TLS and asks
// for a client certificate (mTLS), and the RBAC policies its network and HTTP filters enforce.
type FilterChain struct {
	Name              string
	DestinationPort   uint32 // 0: any
	TransportProtocol string // "tls", "raw_buffer" or "" (any)
	TLS               bool
	RequireClientCert bool
	// RBACPolicies are the policy names of the chain's RBAC filters' rules (istiod names them
	// ns[<namespace>]-policy[<name>]-rule[<n>]), sorted; shadow rules are not enforcing and not listed.
	RBACPolicies []string
}

// FilterChains returns the facts of the listener's filter chains, in the listener's order.
func (d *ConfigDump) FilterChains(listener string) ([]FilterChain, error) {
	l, ok := d.Listener(listener)
	if !ok {
		return nil, fmt.Errorf("no active listener %q", listener)
	}
	var out []FilterChain
	for _, fc := range l.GetFilterChains() {
		c := FilterChain{Name: fc.GetName(), DestinationPort: fc.GetFilterChainMatch().GetDestinationPort().GetValue(),
			TransportProtocol: fc.GetFilterChainMatch().GetTransportProtocol()}
		if ts := fc.GetTransportSocket(); ts != nil {
			var tls tlsv3.DownstreamTlsContext
			if ts.GetTypedConfig().UnmarshalTo(&tls) == nil {
				c.TLS, c.RequireClientCert = true, tls.GetRequireClientCertificate().GetValue()
			}
		}
		policies, err := chainRBAC(fc)
		if err != nil {
			return nil, fmt.Errorf("listener %s chain %s: %w", listener, fc.GetName(), err)
		}
		c.RBACPolicies = policies
		out = append(out, c)
	}
	return out, nil
}

// chainRBAC collects the policy names of a chain's network RBAC filters and of the HTTP RBAC filters inside
// its HTTP connection managers.
func chainRBAC(fc *listenerv3.FilterChain) ([]string, error) {
	var names []string
	for _, f := range fc.GetFilters() {
		tc := f.GetTypedConfig()
		switch {
		case tc.MessageIs(&netrbacv3.RBAC{}):
			var r netrbacv3.RBAC
			if err := tc.UnmarshalTo(&r); err != nil {
				return nil, err
			}
			names = append(names, policyNames(r.GetRules())...)
		case tc.MessageIs(&hcmv3.HttpConnectionManager{}):
			var hcm hcmv3.HttpConnectionManager
			if err := tc.UnmarshalTo(&hcm); err != nil {
				return nil, err
			}
			httpNames, err := httpRBAC(hcm.GetHttpFilters())
			if err != nil {
				return nil, err
			}
			names = append(names, httpNames...)
		}
	}
	sort.Strings(names)
	return names, nil
}

func httpRBAC(filters []*hcmv3.HttpFilter) ([]string, error) {
	var names []string
	for _, hf := range filters {
		tc := hf.GetTypedConfig()
		if !tc.MessageIs(&httprbacv3.RBAC{}) {
			continue
		}
		var r httprbacv3.RBAC
		if err := tc.UnmarshalTo(&r); err != nil {
			return nil, err
		}
		names = append(names, policyNames(r.GetRules())...)
	}
	return names, nil
}

func policyNames(r *rbacv3.RBAC) []string {
	var names []string
	for name := range r.GetPolicies() {
		names = append(names, name)
	}
	return names
}
