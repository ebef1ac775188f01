package main

import (
	"net/netip"
	"slices"
	"strconv"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"

	"github.com/istio-sidecar/istio-sidecar/testdoubles/standin-envoy/xds"
)

// Istio's names for the clusters that forward to the original destination (pilot/pkg/networking/util).
const (
	passthroughCluster        = "PassthroughCluster"
	inboundPassthroughCluster = "InboundPassthroughCluster"
)

// upstreamFor picks where a captured connection goes. Outbound ones with a control plane go where istiod's
// listeners, routes and endpoints send them (routeOutbound); inbound ones, those without a control plane, and
// those no listener of istiod's takes go to the original destination. err means Envoy would close the
// connection: the chosen cluster has no endpoint to use.
func (p *proxy) upstreamFor(t transparentListener, orig netip.AddrPort) (cluster, upstream string, err error) {
	if t.inbound {
		return inboundPassthroughCluster, orig.String(), nil
	}
	c := p.xdsClient()
	if c == nil {
		return passthroughCluster, orig.String(), nil
	}
	cluster, eps, err := routeOutbound(c.Snapshot(), orig)
	switch {
	case cluster == "":
		return passthroughCluster, orig.String(), nil
	case err != nil:
		return cluster, "", err
	}
	return cluster, p.rr.pick(cluster, eps), nil
}

// routeOutbound is what Envoy does with a connection whose original destination is dst: the listener bound to
// dst, else the one on the wildcard address and dst's port; its filter chain for dst; the cluster that chain's
// tcp_proxy names, or the one the first route of the virtual host for dst names. cluster is "" when nothing
// takes dst (virtualOutbound's own chain, the passthrough) or the route has no cluster (a direct response, which
// the stand-in does not answer); else endpoints are the cluster's usable ones ("host:port") or err says why
// there are none.
//
// The stand-in reads nothing of the connection before it routes it: it takes the client to speak plaintext
// HTTP/1.1 where a filter chain asks (http_inspector), to send no TLS SNI, and to send as Host the address it
// dialled, which istiod lists among the domains of the service's virtual host.
func routeOutbound(snap xds.Snapshot, dst netip.AddrPort) (cluster string, endpoints []string, err error) {
	l := listenerFor(snap.Listeners, dst)
	if l == nil {
		return "", nil, nil
	}
	cluster = chainCluster(snap, filterChainFor(l, dst), dst)
	if cluster == "" {
		return "", nil, nil
	}
	endpoints, err = clusterEndpoints(snap, cluster, dst)
	return cluster, endpoints, err
}

// listenerFor is Envoy's choice among the listeners use_original_dst hands a connection to: an exact address
// first, then a wildcard of dst's family on dst's port. The capture listeners themselves (a connection to
// 15006 is no inbound one) and warming listeners are not candidates.
func listenerFor(entries []xds.Entry, dst netip.AddrPort) *listenerv3.Listener {
	var wildcard *listenerv3.Listener
	for _, e := range entries {
		l, ok := e.Resource.(*listenerv3.Listener)
		if !ok || e.Warming {
			continue
		}
		if _, capture := captureListener(l); capture {
			continue
		}
		addrs := []*corev3.Address{l.GetAddress()}
		for _, a := range l.GetAdditionalAddresses() {
			addrs = append(addrs, a.GetAddress())
		}
		for _, a := range addrs {
			ap, err := addrPortOf(a.GetSocketAddress())
			ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
			switch {
			case err != nil || ap.Port() != dst.Port():
			case ap.Addr() == dst.Addr():
				return l
			case ap.Addr().IsUnspecified() && ap.Addr().Is4() == dst.Addr().Is4():
				wildcard = l
			}
		}
	}
	return wildcard
}

// filterChainFor narrows the filter chains as Envoy does, criterion by criterion in Envoy's order, keeping at
// each step the chains that match most specifically; with none left, the listener's default chain.
func filterChainFor(l *listenerv3.Listener, dst netip.AddrPort) *listenerv3.FilterChain {
	chains := l.GetFilterChains()
	for _, score := range chainCriteria(dst) {
		chains = mostSpecific(chains, score)
	}
	if len(chains) > 0 {
		return chains[0]
	}
	return l.GetDefaultFilterChain()
}

// chainCriteria score a chain's match on one criterion: -1 does not match, 0 matches as unset, higher is more
// specific.
func chainCriteria(dst netip.AddrPort) []func(*listenerv3.FilterChainMatch) int {
	return []func(*listenerv3.FilterChainMatch) int{
		func(m *listenerv3.FilterChainMatch) int {
			return scoreSet(m.GetDestinationPort() != nil, m.GetDestinationPort().GetValue() == uint32(dst.Port()))
		},
		func(m *listenerv3.FilterChainMatch) int { return scorePrefixes(m.GetPrefixRanges(), dst.Addr()) },
		func(m *listenerv3.FilterChainMatch) int { return scoreSet(len(m.GetServerNames()) > 0, false) },
		func(m *listenerv3.FilterChainMatch) int {
			return scoreSet(m.GetTransportProtocol() != "", m.GetTransportProtocol() == "raw_buffer")
		},
		func(m *listenerv3.FilterChainMatch) int {
			return scoreSet(len(m.GetApplicationProtocols()) > 0, slices.Contains(m.GetApplicationProtocols(), "http/1.1"))
		},
	}
}

func scoreSet(set, matches bool) int {
	switch {
	case !set:
		return 0
	case matches:
		return 1
	}
	return -1
}

// scorePrefixes is one more than the longest of ranges that holds a, so that any range beats none.
func scorePrefixes(ranges []*corev3.CidrRange, a netip.Addr) int {
	if len(ranges) == 0 {
		return 0
	}
	best := -1
	for _, r := range ranges {
		ip, err := netip.ParseAddr(r.GetAddressPrefix())
		if err != nil {
			continue
		}
		bits := ip.BitLen()
		if r.GetPrefixLen() != nil {
			bits = int(r.GetPrefixLen().GetValue())
		}
		if p, err := ip.Unmap().Prefix(bits); err == nil && p.Contains(a) && bits+1 > best {
			best = bits + 1
		}
	}
	return best
}

func mostSpecific(chains []*listenerv3.FilterChain, score func(*listenerv3.FilterChainMatch) int) []*listenerv3.FilterChain {
	best, out := 0, []*listenerv3.FilterChain(nil)
	for _, fc := range chains {
		switch s := score(fc.GetFilterChainMatch()); {
		case s > best:
			best, out = s, []*listenerv3.FilterChain{fc}
		case s == best:
			out = append(out, fc)
		}
	}
	return out
}

// chainCluster is the cluster the chain's last network filter sends to: a tcp_proxy's, or, for an
// http_connection_manager, the first route's of the virtual host for dst in its route configuration (RDS or
// inline). Of weighted clusters it takes the first.
func chainCluster(snap xds.Snapshot, fc *listenerv3.FilterChain, dst netip.AddrPort) string {
	fs := fc.GetFilters()
	if len(fs) == 0 {
		return ""
	}
	cfg := fs[len(fs)-1].GetTypedConfig()
	var tcp tcpv3.TcpProxy
	if cfg.MessageIs(&tcp) && cfg.UnmarshalTo(&tcp) == nil {
		if w := tcp.GetWeightedClusters().GetClusters(); len(w) > 0 {
			return w[0].GetName()
		}
		return tcp.GetCluster()
	}
	var hcm hcmv3.HttpConnectionManager
	if !cfg.MessageIs(&hcm) || cfg.UnmarshalTo(&hcm) != nil {
		return ""
	}
	rc := hcm.GetRouteConfig()
	if name := hcm.GetRds().GetRouteConfigName(); name != "" {
		rc = findEntry[*routev3.RouteConfiguration](snap.Routes, name)
	}
	return routeCluster(virtualHostFor(rc, dst))
}

// virtualHostFor matches dst's address, with or without its port, against the domains exactly, else takes the
// "*" host. istiod lists a service's addresses without the port (it sets ignore_port_in_host_matching), an
// IPv6 one in brackets.
func virtualHostFor(rc *routev3.RouteConfiguration, dst netip.AddrPort) *routev3.VirtualHost {
	host := dst.Addr().String()
	if dst.Addr().Is6() {
		host = "[" + host + "]"
	}
	withPort := host + ":" + strconv.Itoa(int(dst.Port()))
	var star *routev3.VirtualHost
	for _, vh := range rc.GetVirtualHosts() {
		for _, d := range vh.GetDomains() {
			switch d {
			case host, withPort:
				return vh
			case "*":
				if star == nil {
					star = vh
				}
			}
		}
	}
	return star
}

// routeCluster is the cluster of the virtual host's first route; "" for a route with none (a direct response
// such as istiod's block_all 502).
func routeCluster(vh *routev3.VirtualHost) string {
	routes := vh.GetRoutes()
	if len(routes) == 0 {
		return ""
	}
	action := routes[0].GetRoute()
	if w := action.GetWeightedClusters().GetClusters(); len(w) > 0 {
		return w[0].GetName()
	}
	return action.GetCluster()
}
