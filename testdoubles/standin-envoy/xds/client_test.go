package xds

import (
	"context"
	"net"
	"path/filepath"
	"slices"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// fakeADS is a delta ADS server that hands each stream to the test: a unit test of the client's protocol, the
// part a real istiod (see the package main tests) never exercises, such as a rejected response.
type fakeADS struct {
	discoveryv3.UnimplementedAggregatedDiscoveryServiceServer
	streams chan discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesServer
	reqs    chan *discoveryv3.DeltaDiscoveryRequest
}

func (f *fakeADS) DeltaAggregatedResources(s discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesServer) error {
	f.streams <- s
	for {
		req, err := s.Recv()
		if err != nil {
			return err
		}
		f.reqs <- req
	}
}

func startFake(t *testing.T) (*fakeADS, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "XDS")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeADS{streams: make(chan discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesServer, 1),
		reqs: make(chan *discoveryv3.DeltaDiscoveryRequest, 16)}
	srv := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(srv, f)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return f, path
}

func (f *fakeADS) next(t *testing.T) *discoveryv3.DeltaDiscoveryRequest {
	t.Helper()
	select {
	case r := <-f.reqs:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("no request from the client")
		return nil
	}
}

// expectNoRequest checks the client sent nothing more; a short wait is all a negative can have.
func (f *fakeADS) expectNoRequest(t *testing.T, why string) {
	t.Helper()
	select {
	case r := <-f.reqs:
		t.Fatalf("%s, but the client sent %v", why, r)
	case <-time.After(200 * time.Millisecond):
	}
}

func push(t *testing.T, s discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesServer, typeURL, nonce string, removed []string, msgs ...proto.Message) {
	t.Helper()
	resp := &discoveryv3.DeltaDiscoveryResponse{TypeUrl: typeURL, Nonce: nonce, SystemVersionInfo: nonce, RemovedResources: removed}
	for _, m := range msgs {
		a, err := anypb.New(m)
		if err != nil {
			t.Fatal(err)
		}
		resp.Resources = append(resp.Resources, &discoveryv3.Resource{Name: resourceName(m), Version: nonce, Resource: a})
	}
	if err := s.Send(resp); err != nil {
		t.Fatal(err)
	}
}

func edsCluster(name string) *clusterv3.Cluster {
	return &clusterv3.Cluster{Name: name, ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{ServiceName: name,
			EdsConfig: &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}}}
}

func rdsListener(name, route string) *listenerv3.Listener {
	hcm, _ := anypb.New(&hcmv3.HttpConnectionManager{StatPrefix: name, RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{
		Rds: &hcmv3.Rds{RouteConfigName: route, ConfigSource: &corev3.ConfigSource{
			ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}}}})
	return &listenerv3.Listener{Name: name, Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
		SocketAddress: &corev3.SocketAddress{Address: "0.0.0.0", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 8080}}}},
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{Name: hcmName,
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: hcm}}}}}}
}

// TestEnvoysOrderAckAndNack follows one stream: CDS, then EDS for the EDS cluster, LDS only once that cluster is
// warm, RDS for the listener's route; initialised only when the route arrived; a response that fails validation
// NACKed with the reason and nothing of it kept; a removed cluster's endpoints unsubscribed.
func TestEnvoysOrderAckAndNack(t *testing.T) {
	f, path := startFake(t)
	initialized, rejected := make(chan struct{}), make(chan error, 4)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	node := &corev3.Node{Id: "sidecar~10.0.0.1~a.ns~ns.svc.cluster.local"}
	c, err := Start(ctx, Config{Node: node, ADSPath: path, Delta: true, Hooks: Hooks{
		Initialized: func() { close(initialized) },
		Update: func(_, _ string, err error) {
			if err != nil {
				rejected <- err
			}
		}}})
	if err != nil {
		t.Fatal(err)
	}
	stream := <-f.streams
	if r := f.next(t); r.GetTypeUrl() != ClusterType || len(r.GetResourceNamesSubscribe()) != 0 || !proto.Equal(r.GetNode(), node) {
		t.Fatalf("first request = %v, want a wildcard CDS subscription carrying the node", r)
	}
	push(t, stream, ClusterType, "c1", nil, edsCluster("a"))
	wantRequests(t, f, ack(ClusterType, "c1"), subscribe(EndpointType, "a"))
	f.expectNoRequest(t, "LDS must wait for cluster a's endpoints")
	push(t, stream, EndpointType, "e1", nil, &endpointv3.ClusterLoadAssignment{ClusterName: "a"})
	wantRequests(t, f, ack(EndpointType, "e1"), subscribe(ListenerType))
	push(t, stream, ListenerType, "l1", nil, rdsListener("0.0.0.0_8080", "8080"))
	wantRequests(t, f, ack(ListenerType, "l1"), subscribe(RouteType, "8080"))
	assertNotClosed(t, initialized, "initialised before the listener's route arrived")
	push(t, stream, RouteType, "r1", nil, &routev3.RouteConfiguration{Name: "8080"})
	wantRequests(t, f, ack(RouteType, "r1"))
	<-initialized

	push(t, stream, ClusterType, "c2", nil, &clusterv3.Cluster{Name: ""}) // fails Envoy's validation: no name
	if r := f.next(t); r.GetResponseNonce() != "c2" || r.GetErrorDetail().GetMessage() == "" {
		t.Fatalf("invalid cluster answered with %v, want a NACK with the reason", r)
	}
	if err := <-rejected; err == nil {
		t.Fatal("no rejection reported")
	}
	push(t, stream, ClusterType, "c3", []string{"a"})
	wantRequests(t, f, ack(ClusterType, "c3"), unsubscribe(EndpointType, "a"))
	if snap := c.Snapshot(); len(snap.Clusters) != 0 || len(snap.Endpoints) != 0 || snap.Versions[ClusterType] != "c3" {
		t.Errorf("after removing a: %d clusters, %d endpoints, CDS version %q", len(snap.Clusters), len(snap.Endpoints), snap.Versions[ClusterType])
	}
}

type requestCheck func(*discoveryv3.DeltaDiscoveryRequest) bool

func ack(typeURL, nonce string) requestCheck {
	return func(r *discoveryv3.DeltaDiscoveryRequest) bool {
		return r.GetTypeUrl() == typeURL && r.GetResponseNonce() == nonce && r.GetErrorDetail() == nil
	}
}

func subscribe(typeURL string, names ...string) requestCheck {
	return func(r *discoveryv3.DeltaDiscoveryRequest) bool {
		return r.GetTypeUrl() == typeURL && r.GetResponseNonce() == "" && slices.Equal(r.GetResourceNamesSubscribe(), names)
	}
}

func unsubscribe(typeURL string, names ...string) requestCheck {
	return func(r *discoveryv3.DeltaDiscoveryRequest) bool {
		return r.GetTypeUrl() == typeURL && slices.Equal(r.GetResourceNamesUnsubscribe(), names)
	}
}

// wantRequests reads as many requests as checks, in order.
func wantRequests(t *testing.T, f *fakeADS, checks ...requestCheck) {
	t.Helper()
	for i, check := range checks {
		if r := f.next(t); !check(r) {
			t.Fatalf("request %d = %v", i, r)
		}
	}
}

func assertNotClosed(t *testing.T, ch chan struct{}, msg string) {
	t.Helper()
	select {
	case <-ch:
		t.Fatal(msg)
	default:
	}
}
