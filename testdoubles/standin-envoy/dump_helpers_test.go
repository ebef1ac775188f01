package main

import (
	"fmt"
	"io"
	"net/http"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/istio-sidecar/istio-sidecar/testdoubles/standin-envoy/xds"
)

// Readers of the admin API as a test of a real Envoy would read it: Envoy's JSON decoded into go-control-plane's
// admin types, with a resolver that keeps unknown typed configs as their @type.

// testResolver records the types a dump held that no registered message describes.
var testResolver = xds.NewResolver()

func getBody(c *http.Client, url string) ([]byte, error) {
	resp, err := c.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %d %.200s", url, resp.StatusCode, body)
	}
	return body, err
}

// decodeAdmin decodes an admin JSON answer into m.
func decodeAdmin(body []byte, m proto.Message) error {
	return protojson.UnmarshalOptions{Resolver: testResolver}.Unmarshal(body, m)
}

// configDump is one /config_dump, split by section.
type configDump struct {
	clusters  adminv3.ClustersConfigDump
	endpoints adminv3.EndpointsConfigDump
	listeners adminv3.ListenersConfigDump
	routes    adminv3.RoutesConfigDump
	secrets   adminv3.SecretsConfigDump
}

func fetchConfigDump(c *http.Client, admin string) (*configDump, error) {
	body, err := getBody(c, "http://"+admin+"/config_dump?include_eds")
	if err != nil {
		return nil, err
	}
	var dump adminv3.ConfigDump
	if err := decodeAdmin(body, &dump); err != nil {
		return nil, fmt.Errorf("decoding config_dump: %w", err)
	}
	d := &configDump{}
	for _, a := range dump.GetConfigs() {
		var target proto.Message
		switch a.GetTypeUrl() {
		case "type.googleapis.com/envoy.admin.v3.ClustersConfigDump":
			target = &d.clusters
		case "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump":
			target = &d.endpoints
		case "type.googleapis.com/envoy.admin.v3.ListenersConfigDump":
			target = &d.listeners
		case "type.googleapis.com/envoy.admin.v3.RoutesConfigDump":
			target = &d.routes
		case "type.googleapis.com/envoy.admin.v3.SecretsConfigDump":
			target = &d.secrets
		default:
			continue
		}
		if err := a.UnmarshalTo(target); err != nil {
			return nil, err
		}
	}
	return d, nil
}
