package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"strconv"
)

// Istio's defaults (pilot/cmd/pilot-agent/options, tools/packaging/common/envoy_bootstrap.json), used only
// when the bootstrap leaves the value out.
const (
	defaultAdminPort      = 15000
	defaultStatusPort     = 15020 // the agent's status server, upstream of the health listener
	defaultHealthPort     = 15021
	defaultPrometheusPort = 15090
)

// bootstrap is the part of Envoy's bootstrap the stand-in acts on, plus the whole document for config_dump.
type bootstrap struct {
	raw   map[string]any
	admin netip.AddrPort
	node  json.RawMessage
	// httpListeners are the static listeners whose HTTP routes point at static clusters: in Istio's
	// template the 15021 health listener and the 15090 Prometheus listener.
	httpListeners []httpListener
	// skipped names static listeners the stand-in cannot serve (TLS ones: the optional secure metrics ports).
	skipped []string
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

// The JSON shapes below mirror the proto3 JSON of envoy.config.bootstrap.v3.Bootstrap, reduced to the fields
// read here. Proto JSON accepts both the snake_case and the lowerCamelCase name of a field, and Istio's own
// template uses "additionalAddresses", so that one is read under both names.
type socketAddress struct {
	Address   string    `json:"address"`
	PortValue portValue `json:"port_value"`
}

type address struct {
	SocketAddress *socketAddress `json:"socket_address"`
}

type listenerJSON struct {
	Name                string  `json:"name"`
	Address             address `json:"address"`
	AdditionalAddresses []struct {
		Address address `json:"address"`
	} `json:"additional_addresses"`
	AdditionalAddressesCamel []struct {
		Address address `json:"address"`
	} `json:"additionalAddresses"`
	FilterChains []struct {
		TransportSocket json.RawMessage `json:"transport_socket"`
		Filters         []struct {
			Name        string `json:"name"`
			TypedConfig struct {
				RouteConfig struct {
					VirtualHosts []struct {
						Routes []struct {
							Match struct {
								Prefix string `json:"prefix"`
							} `json:"match"`
							Route struct {
								Cluster string `json:"cluster"`
							} `json:"route"`
						} `json:"routes"`
					} `json:"virtual_hosts"`
				} `json:"route_config"`
			} `json:"typed_config"`
		} `json:"filters"`
	} `json:"filter_chains"`
}

type clusterJSON struct {
	Name           string `json:"name"`
	LoadAssignment struct {
		Endpoints []struct {
			LbEndpoints []struct {
				Endpoint struct {
					Address address `json:"address"`
				} `json:"endpoint"`
			} `json:"lb_endpoints"`
		} `json:"endpoints"`
	} `json:"load_assignment"`
}

type bootstrapJSON struct {
	Node  json.RawMessage `json:"node"`
	Admin struct {
		Address address `json:"address"`
	} `json:"admin"`
	StaticResources struct {
		Listeners []listenerJSON `json:"listeners"`
		Clusters  []clusterJSON  `json:"clusters"`
	} `json:"static_resources"`
}

// portValue accepts a port as a JSON number or, as proto JSON also allows, a string.
type portValue uint16

func (p *portValue) UnmarshalJSON(b []byte) error {
	s := string(bytes.Trim(b, `"`))
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return fmt.Errorf("port_value %s: %w", b, err)
	}
	*p = portValue(n)
	return nil
}

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
	doc := map[string]any{}
	if len(bytes.TrimSpace(data)) > 0 {
		if err := json.Unmarshal(data, &doc); err != nil {
			return nil, fmt.Errorf("bootstrap is not JSON (the stand-in reads no YAML): %w", err)
		}
	}
	if overlay != "" {
		// pilot-agent converts ISTIO_BOOTSTRAP_OVERRIDE to JSON before passing it (pkg/envoy/proxy.go).
		var over map[string]any
		if err := json.Unmarshal([]byte(overlay), &over); err != nil {
			return nil, fmt.Errorf("--config-yaml is not JSON (the stand-in reads no YAML): %w", err)
		}
		mergeProtoJSON(doc, over)
	}
	merged, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("re-encoding bootstrap: %w", err)
	}
	var bj bootstrapJSON
	if err := json.Unmarshal(merged, &bj); err != nil {
		return nil, fmt.Errorf("decoding bootstrap: %w", err)
	}
	return resolveBootstrap(doc, &bj)
}

// mergeProtoJSON merges src into dst the way protobuf's MergeFrom does, which is what Envoy applies to
// --config-yaml: messages merge field by field, repeated fields append, scalars replace.
func mergeProtoJSON(dst, src map[string]any) {
	for k, sv := range src {
		switch s := sv.(type) {
		case map[string]any:
			if d, ok := dst[k].(map[string]any); ok {
				mergeProtoJSON(d, s)
				continue
			}
		case []any:
			if d, ok := dst[k].([]any); ok {
				dst[k] = append(d, s...)
				continue
			}
		}
		dst[k] = sv
	}
}

func resolveBootstrap(doc map[string]any, bj *bootstrapJSON) (*bootstrap, error) {
	b := &bootstrap{raw: doc, node: bj.Node}
	b.admin = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), defaultAdminPort)
	if sa := bj.Admin.Address.SocketAddress; sa != nil {
		ap, err := sa.addrPort()
		if err != nil {
			return nil, fmt.Errorf("admin.address: %w", err)
		}
		b.admin = ap
	}
	clusters := map[string]netip.AddrPort{}
	for _, c := range bj.StaticResources.Clusters {
		clusters[c.Name] = c.firstEndpoint()
	}
	for i, l := range bj.StaticResources.Listeners {
		hl, ok, err := l.httpListener(clusters)
		if err != nil {
			return nil, fmt.Errorf("static_resources.listeners[%d] (%s): %w", i, l.Name, err)
		}
		if !ok {
			b.skipped = append(b.skipped, l.Name)
			continue
		}
		b.httpListeners = append(b.httpListeners, hl)
	}
	if len(bj.StaticResources.Listeners) == 0 {
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

func (sa *socketAddress) addrPort() (netip.AddrPort, error) {
	a, err := netip.ParseAddr(sa.Address)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("socket_address.address %q: %w", sa.Address, err)
	}
	return netip.AddrPortFrom(a, uint16(sa.PortValue)), nil
}

func (c *clusterJSON) firstEndpoint() netip.AddrPort {
	for _, e := range c.LoadAssignment.Endpoints {
		for _, lb := range e.LbEndpoints {
			if sa := lb.Endpoint.Address.SocketAddress; sa != nil {
				if ap, err := sa.addrPort(); err == nil {
					return ap
				}
			}
		}
	}
	return netip.AddrPort{}
}

// httpListener reports ok=false for listeners the stand-in does not serve: TLS filter chains, or no
// HTTP routes at all.
func (l *listenerJSON) httpListener(clusters map[string]netip.AddrPort) (httpListener, bool, error) {
	hl := httpListener{name: l.Name}
	if l.Address.SocketAddress == nil {
		return hl, false, fmt.Errorf("address.socket_address missing")
	}
	addrs := []address{l.Address}
	for _, a := range append(l.AdditionalAddresses, l.AdditionalAddressesCamel...) {
		addrs = append(addrs, a.Address)
	}
	for _, a := range addrs {
		if a.SocketAddress == nil {
			continue
		}
		ap, err := a.SocketAddress.addrPort()
		if err != nil {
			return hl, false, err
		}
		hl.addrs = append(hl.addrs, ap)
	}
	for _, fc := range l.FilterChains {
		if len(fc.TransportSocket) > 0 {
			return hl, false, nil
		}
		for _, f := range fc.Filters {
			for _, vh := range f.TypedConfig.RouteConfig.VirtualHosts {
				for _, r := range vh.Routes {
					hl.routes = append(hl.routes, route{
						prefix:   r.Match.Prefix,
						cluster:  r.Route.Cluster,
						upstream: clusters[r.Route.Cluster],
					})
				}
			}
		}
	}
	return hl, len(hl.routes) > 0, nil
}
