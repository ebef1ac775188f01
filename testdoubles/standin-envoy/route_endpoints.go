package main

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"

	"github.com/istio-sidecar/istio-sidecar/testdoubles/standin-envoy/xds"
)

// clusterEndpoints are the endpoints of a cluster Envoy would connect to: dst itself for an ORIGINAL_DST cluster
// (Istio's PassthroughCluster), else the healthy ones of its load assignment, EDS's for an EDS cluster, its own
// for the others (BlackHoleCluster has none; a DNS cluster's are host names, which the dial resolves).
func clusterEndpoints(snap xds.Snapshot, name string, dst netip.AddrPort) ([]string, error) {
	c := findEntry[*clusterv3.Cluster](snap.Clusters, name)
	switch {
	case c == nil:
		return nil, fmt.Errorf("cluster %s is not in CDS", name)
	case c.GetClusterType() != nil:
		return nil, fmt.Errorf("cluster %s is of type %s, which the stand-in does not route to", name, c.GetClusterType().GetName())
	case c.GetType() == clusterv3.Cluster_ORIGINAL_DST:
		return []string{dst.String()}, nil
	}
	cla := c.GetLoadAssignment()
	if c.GetType() == clusterv3.Cluster_EDS {
		service := c.GetEdsClusterConfig().GetServiceName()
		if service == "" {
			service = name
		}
		cla = findEntry[*endpointv3.ClusterLoadAssignment](snap.Endpoints, service)
	}
	eps := healthyEndpoints(cla)
	if len(eps) == 0 {
		return nil, fmt.Errorf("cluster %s has no healthy endpoint", name)
	}
	return eps, nil
}

// findEntry is the resource of type T named name among one type's entries, nil (T's zero) when absent.
func findEntry[T any](entries []xds.Entry, name string) T {
	for _, e := range entries {
		if r, ok := e.Resource.(T); ok && e.Name == name {
			return r
		}
	}
	var zero T
	return zero
}

// healthyEndpoints are the HEALTHY and UNKNOWN (not health checked) socket addresses of the highest priority
// (lowest number) that has any, in the assignment's order. Envoy spills over to a lower priority only when a
// higher one lacks healthy hosts; the stand-in does so only when it has none.
func healthyEndpoints(cla *endpointv3.ClusterLoadAssignment) []string {
	var out []string
	var priority uint32
	for _, loc := range cla.GetEndpoints() {
		for _, lb := range loc.GetLbEndpoints() {
			if h := lb.GetHealthStatus(); h != corev3.HealthStatus_HEALTHY && h != corev3.HealthStatus_UNKNOWN {
				continue
			}
			sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
			if sa.GetAddress() == "" || sa.GetPortValue() == 0 || sa.GetPortValue() > 0xffff {
				continue
			}
			if len(out) == 0 || loc.GetPriority() < priority {
				out, priority = nil, loc.GetPriority()
			}
			if loc.GetPriority() == priority {
				out = append(out, net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(sa.GetPortValue()))))
			}
		}
	}
	return out
}

// roundRobin is Envoy's default load balancing (ROUND_ROBIN), one turn per cluster.
type roundRobin struct {
	mu   sync.Mutex
	next map[string]int
}

func (r *roundRobin) pick(cluster string, endpoints []string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.next == nil {
		r.next = map[string]int{}
	}
	i := r.next[cluster] % len(endpoints)
	r.next[cluster] = i + 1
	return endpoints[i]
}
