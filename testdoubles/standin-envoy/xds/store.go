package xds

import (
	"fmt"
	"sort"
	"sync"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Entry is one resource as accepted from the control plane.
type Entry struct {
	Name        string
	Version     string
	Resource    proto.Message
	LastUpdated time.Time
	// Warming is set in a Snapshot for a cluster or listener whose endpoints, routes or secrets have not all
	// arrived: Envoy does not use it yet (dynamic_warming_clusters, warming_state).
	Warming bool
}

// Snapshot is everything accepted so far, each list sorted by name, with each type's last system version.
type Snapshot struct {
	Clusters, Endpoints, Listeners, Routes, Secrets []Entry
	Versions                                        map[string]string
}

// store holds the accepted resources by type URL and name. The client's loop writes it; the admin API reads it.
type store struct {
	mu       sync.RWMutex
	byType   map[string]map[string]stored
	versions map[string]string
}

func newStore() *store {
	return &store{byType: map[string]map[string]stored{}, versions: map[string]string{}}
}

func (s *store) put(typeURL string, e Entry) { s.putStored(typeURL, stored{Entry: e}) }

func (s *store) putStored(typeURL string, e stored) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.byType[typeURL]
	if m == nil {
		m = map[string]stored{}
		s.byType[typeURL] = m
	}
	m[e.Name] = e
}

func (s *store) remove(typeURL, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byType[typeURL], name)
}

func (s *store) setVersion(typeURL, v string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.versions[typeURL] = v
}

// warm reports whether everything d names has arrived.
func (s *store) warm(d deps) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.warmLocked(d)
}

func (s *store) warmLocked(d deps) bool {
	if _, ok := s.byType[EndpointType][d.eds]; d.eds != "" && !ok {
		return false
	}
	for _, r := range d.routes {
		if _, ok := s.byType[RouteType][r]; !ok {
			return false
		}
	}
	for _, r := range d.secrets {
		if _, ok := s.byType[SecretType][r.Name]; !ok {
			return false
		}
	}
	return true
}

// storedOf returns a type's entries with their dependencies, in no order.
func (s *store) storedOf(typeURL string) []stored {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]stored, 0, len(s.byType[typeURL]))
	for _, e := range s.byType[typeURL] {
		out = append(out, e)
	}
	return out
}

// list returns the entries of a type sorted by name, each marked warming or not.
func (s *store) list(typeURL string) []Entry {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]Entry, 0, len(s.byType[typeURL]))
	for _, e := range s.byType[typeURL] {
		e.Warming = !s.warmLocked(e.deps)
		out = append(out, e.Entry)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// snapshot copies everything out for the admin API.
func (s *store) snapshot() Snapshot {
	snap := Snapshot{Clusters: s.list(ClusterType), Endpoints: s.list(EndpointType), Listeners: s.list(ListenerType),
		Routes: s.list(RouteType), Secrets: s.list(SecretType), Versions: map[string]string{}}
	s.mu.RLock()
	defer s.mu.RUnlock()
	for k, v := range s.versions {
		snap.Versions[k] = v
	}
	return snap
}

// names returns the names of a type's entries.
func (s *store) names(typeURL string) names {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := names{}
	for k := range s.byType[typeURL] {
		n[k] = true
	}
	return n
}

// versionsOf returns the versions of a type's entries by name, for a delta stream's initial_resource_versions.
func (s *store) versionsOf(typeURL string) map[string]string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v := map[string]string{}
	for k, e := range s.byType[typeURL] {
		v[k] = e.Version
	}
	return v
}

// newResource returns an empty message of an xDS type URL, or an error for a type the stand-in never asks for.
func newResource(typeURL string) (proto.Message, error) {
	switch typeURL {
	case ClusterType:
		return &clusterv3.Cluster{}, nil
	case EndpointType:
		return &endpointv3.ClusterLoadAssignment{}, nil
	case ListenerType:
		return &listenerv3.Listener{}, nil
	case RouteType:
		return &routev3.RouteConfiguration{}, nil
	case SecretType:
		return &tlsv3.Secret{}, nil
	}
	return nil, fmt.Errorf("unexpected type %s", typeURL)
}

// resourceName is the name a resource is known by: the one SotW responses do not carry beside it.
func resourceName(m proto.Message) string {
	switch r := m.(type) {
	case *clusterv3.Cluster:
		return r.GetName()
	case *endpointv3.ClusterLoadAssignment:
		return r.GetClusterName()
	case *listenerv3.Listener:
		return r.GetName()
	case *routev3.RouteConfiguration:
		return r.GetName()
	case *tlsv3.Secret:
		return r.GetName()
	}
	return ""
}

// decode unpacks a resource of typeURL and validates it with the rules of Envoy's API (protoc-gen-validate),
// which Envoy applies before it accepts a resource.
func decode(typeURL string, a *anypb.Any) (proto.Message, error) {
	if a.GetTypeUrl() != typeURL {
		return nil, fmt.Errorf("resource of type %s in a %s response", a.GetTypeUrl(), typeURL)
	}
	m, err := newResource(typeURL)
	if err != nil {
		return nil, err
	}
	if err := a.UnmarshalTo(m); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", typeURL, err)
	}
	if v, ok := m.(interface{ Validate() error }); ok {
		if err := v.Validate(); err != nil {
			return nil, fmt.Errorf("%s %s: %w", typeURL, resourceName(m), err)
		}
	}
	return m, nil
}
