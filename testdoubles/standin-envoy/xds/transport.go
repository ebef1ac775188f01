package xds

import (
	"context"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// transport is one ADS stream, incremental (delta) or state of the world (SotW). The client's loop is its only
// sender; one goroutine receives.
type transport interface {
	// subscribe changes the names subscribed for typeURL. The first call for a type opens its subscription: with
	// no names, a wildcard one (CDS, LDS); initial gives the versions already held, for a delta stream to resume.
	subscribe(typeURL string, add, remove []string, initial map[string]string) error
	// ack accepts u, or rejects it (a NACK) when rejected is not nil.
	ack(u *update, rejected error) error
	recv() (*update, error)
}

// resource is one resource of a response, decoded.
type resource struct {
	name, version string
	msg           proto.Message
}

// update is one response, decoded. err is set when a resource would not decode or validate: the whole response
// is then rejected, as Envoy rejects it.
type update struct {
	typeURL, version, nonce string
	resources               []resource
	removed                 []string
	// fullState marks a SotW response to a wildcard subscription: a resource it leaves out is gone.
	fullState bool
	err       error
}

// maxMessage is well above what istiod sends a sidecar of a large mesh; gRPC's default 4 MiB is not.
const maxMessage = 64 << 20

func openTransport(ctx context.Context, conn *grpc.ClientConn, delta bool, node *corev3.Node) (transport, error) {
	client := discoveryv3.NewAggregatedDiscoveryServiceClient(conn)
	opts := []grpc.CallOption{grpc.WaitForReady(true), grpc.MaxCallRecvMsgSize(maxMessage)}
	if delta {
		s, err := client.DeltaAggregatedResources(ctx, opts...)
		if err != nil {
			return nil, err
		}
		return &deltaTransport{stream: s, node: node}, nil
	}
	s, err := client.StreamAggregatedResources(ctx, opts...)
	if err != nil {
		return nil, err
	}
	return &sotwTransport{stream: s, node: node, names: map[string]names{}, versions: map[string]string{},
		nonces: map[string]string{}}, nil
}

// deltaTransport speaks DeltaAggregatedResources, what Istio's bootstrap asks for (api_type DELTA_GRPC).
type deltaTransport struct {
	stream discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
	node   *corev3.Node // sent on the stream's first request only (set_node_on_first_message_only)
}

func (d *deltaTransport) send(req *discoveryv3.DeltaDiscoveryRequest) error {
	if d.node != nil {
		req.Node, d.node = d.node, nil
	}
	return d.stream.Send(req)
}

func (d *deltaTransport) subscribe(typeURL string, add, remove []string, initial map[string]string) error {
	return d.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: typeURL, ResourceNamesSubscribe: add,
		ResourceNamesUnsubscribe: remove, InitialResourceVersions: initial})
}

func (d *deltaTransport) ack(u *update, rejected error) error {
	req := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: u.typeURL, ResponseNonce: u.nonce}
	if rejected != nil {
		req.ErrorDetail = errorStatus(rejected)
	}
	return d.send(req)
}

func (d *deltaTransport) recv() (*update, error) {
	resp, err := d.stream.Recv()
	if err != nil {
		return nil, err
	}
	u := &update{typeURL: resp.GetTypeUrl(), version: resp.GetSystemVersionInfo(), nonce: resp.GetNonce(),
		removed: resp.GetRemovedResources()}
	for _, r := range resp.GetResources() {
		if r.GetResource() == nil {
			// A named resource the server does not have: as good as removed.
			u.removed = append(u.removed, r.GetName())
			continue
		}
		m, err := decode(u.typeURL, r.GetResource())
		if err != nil {
			u.err = err
			return u, nil
		}
		u.resources = append(u.resources, resource{name: r.GetName(), version: r.GetVersion(), msg: m})
	}
	return u, nil
}

// decodeAll decodes the resources of a SotW response, which carry their names inside.
func decodeAll(u *update, all []*anypb.Any) {
	for _, a := range all {
		m, err := decode(u.typeURL, a)
		if err != nil {
			u.err = err
			return
		}
		u.resources = append(u.resources, resource{name: resourceName(m), version: u.version, msg: m})
	}
}
