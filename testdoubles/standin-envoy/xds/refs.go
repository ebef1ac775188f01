package xds

import (
	"fmt"
	"sort"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// What a cluster or listener needs before Envoy counts it warm: the endpoints of an EDS cluster, the route
// configurations its HTTP connection managers name, and the SDS secrets its TLS contexts name.

// SecretRef is one SDS secret a TLS context names, and the static cluster of the SDS server to ask.
type SecretRef struct {
	Name    string
	Cluster string
}

// edsName is the name an EDS cluster's endpoints are requested under (eds_cluster_config.service_name, else the
// cluster's name), or "" for a cluster of any other discovery type.
func edsName(c *clusterv3.Cluster) string {
	if c.GetType() != clusterv3.Cluster_EDS {
		return ""
	}
	if n := c.GetEdsClusterConfig().GetServiceName(); n != "" {
		return n
	}
	return c.GetName()
}

// clusterSecrets lists the secrets of a cluster's transport socket and of each transport_socket_matches entry,
// where istiod puts its mTLS context (tlsMode-istio).
func clusterSecrets(c *clusterv3.Cluster) ([]SecretRef, error) {
	sockets := []*corev3.TransportSocket{c.GetTransportSocket()}
	for _, m := range c.GetTransportSocketMatches() {
		sockets = append(sockets, m.GetTransportSocket())
	}
	var refs []SecretRef
	for _, ts := range sockets {
		r, err := socketSecrets(ts, &tlsv3.UpstreamTlsContext{})
		if err != nil {
			return nil, fmt.Errorf("cluster %s: %w", c.GetName(), err)
		}
		refs = append(refs, r...)
	}
	return refs, nil
}

// listenerChains is every filter chain of a listener, the default one included.
func listenerChains(l *listenerv3.Listener) []*listenerv3.FilterChain {
	chains := l.GetFilterChains()
	if d := l.GetDefaultFilterChain(); d != nil {
		chains = append(append([]*listenerv3.FilterChain(nil), chains...), d)
	}
	return chains
}

func listenerSecrets(l *listenerv3.Listener) ([]SecretRef, error) {
	var refs []SecretRef
	for _, fc := range listenerChains(l) {
		r, err := socketSecrets(fc.GetTransportSocket(), &tlsv3.DownstreamTlsContext{})
		if err != nil {
			return nil, fmt.Errorf("listener %s: %w", l.GetName(), err)
		}
		refs = append(refs, r...)
	}
	return refs, nil
}

// tlsContext is what Upstream- and DownstreamTlsContext have in common here.
type tlsContext interface {
	proto.Message
	GetCommonTlsContext() *tlsv3.CommonTlsContext
}

// socketSecrets decodes a TLS transport socket into ctx and lists the SDS secrets it names. A socket of any
// other type names none.
func socketSecrets(ts *corev3.TransportSocket, ctx tlsContext) ([]SecretRef, error) {
	cfg := ts.GetTypedConfig()
	if cfg == nil || cfg.GetTypeUrl() != typeURL(ctx) {
		return nil, nil
	}
	if err := cfg.UnmarshalTo(ctx); err != nil {
		return nil, fmt.Errorf("transport socket %s: %w", ts.GetName(), err)
	}
	common := ctx.GetCommonTlsContext()
	sds := append([]*tlsv3.SdsSecretConfig(nil), common.GetTlsCertificateSdsSecretConfigs()...)
	sds = append(sds, common.GetValidationContextSdsSecretConfig(),
		common.GetCombinedValidationContext().GetValidationContextSdsSecretConfig())
	var refs []SecretRef
	for _, s := range sds {
		if s.GetName() == "" {
			continue
		}
		refs = append(refs, SecretRef{Name: s.GetName(), Cluster: sdsCluster(s.GetSdsConfig())})
	}
	return refs, nil
}

// sdsCluster is the static cluster an SDS config source names (istiod's sidecars use sds-grpc), or "" when the
// source is not a gRPC API config source.
func sdsCluster(cs *corev3.ConfigSource) string {
	for _, g := range cs.GetApiConfigSource().GetGrpcServices() {
		if n := g.GetEnvoyGrpc().GetClusterName(); n != "" {
			return n
		}
	}
	return ""
}

// hcmName is the filter istiod's HTTP listeners carry their connection manager in.
const hcmName = "envoy.filters.network.http_connection_manager"

// listenerRoutes lists the route configurations a listener's HTTP connection managers ask RDS for.
func listenerRoutes(l *listenerv3.Listener) ([]string, error) {
	var names []string
	for _, fc := range listenerChains(l) {
		for _, f := range fc.GetFilters() {
			cfg := f.GetTypedConfig()
			if cfg == nil || (cfg.GetTypeUrl() != typeURL(&hcmv3.HttpConnectionManager{}) && f.GetName() != hcmName) {
				continue
			}
			hcm, err := decodeHCM(cfg)
			if err != nil {
				return nil, fmt.Errorf("listener %s filter %s: %w", l.GetName(), f.GetName(), err)
			}
			if n := hcm.GetRds().GetRouteConfigName(); n != "" {
				names = append(names, n)
			}
		}
	}
	return names, nil
}

func decodeHCM(cfg *anypb.Any) (*hcmv3.HttpConnectionManager, error) {
	var hcm hcmv3.HttpConnectionManager
	if err := cfg.UnmarshalTo(&hcm); err != nil {
		return nil, err
	}
	return &hcm, nil
}

// names is a set of resource names.
type names map[string]bool

func (n names) sorted() []string {
	out := make([]string, 0, len(n))
	for k := range n {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// diff returns what want has that n lacks, and what n has that want lacks.
func (n names) diff(want names) (add, remove []string) {
	for k := range want {
		if !n[k] {
			add = append(add, k)
		}
	}
	for k := range n {
		if !want[k] {
			remove = append(remove, k)
		}
	}
	sort.Strings(add)
	sort.Strings(remove)
	return add, remove
}
