package xds

import (
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
)

// sotwTransport speaks StreamAggregatedResources (api_type GRPC). Every request for a type repeats the names
// subscribed and the last version accepted, with the nonce of the response it answers.
type sotwTransport struct {
	stream   discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	node     *corev3.Node
	names    map[string]names
	versions map[string]string
	nonces   map[string]string
}

func (s *sotwTransport) send(typeURL string, rejected error) error {
	req := &discoveryv3.DiscoveryRequest{TypeUrl: typeURL, VersionInfo: s.versions[typeURL],
		ResourceNames: s.names[typeURL].sorted(), ResponseNonce: s.nonces[typeURL]}
	if rejected != nil {
		req.ErrorDetail = errorStatus(rejected)
	}
	if s.node != nil {
		req.Node, s.node = s.node, nil
	}
	return s.stream.Send(req)
}

func (s *sotwTransport) subscribe(typeURL string, add, remove []string, _ map[string]string) error {
	n := s.names[typeURL]
	if n == nil {
		n = names{}
		s.names[typeURL] = n
	}
	for _, a := range add {
		n[a] = true
	}
	for _, r := range remove {
		delete(n, r)
	}
	return s.send(typeURL, nil)
}

func (s *sotwTransport) ack(u *update, rejected error) error {
	s.nonces[u.typeURL] = u.nonce
	if rejected == nil {
		s.versions[u.typeURL] = u.version
	}
	return s.send(u.typeURL, rejected)
}

func (s *sotwTransport) recv() (*update, error) {
	resp, err := s.stream.Recv()
	if err != nil {
		return nil, err
	}
	u := &update{typeURL: resp.GetTypeUrl(), version: resp.GetVersionInfo(), nonce: resp.GetNonce()}
	u.fullState = wildcard(u.typeURL)
	decodeAll(u, resp.GetResources())
	return u, nil
}

// errorStatus is a NACK's error_detail, as Envoy fills it.
func errorStatus(err error) *status.Status {
	return &status.Status{Code: int32(codes.InvalidArgument), Message: err.Error()}
}
