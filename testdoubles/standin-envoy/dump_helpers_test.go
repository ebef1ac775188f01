package main

import (
	"fmt"
	"io"
	"net/http"

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

// strictAdmin fails a decode on any field the stand-in prints that Envoy's API does not have.
var strictAdmin = protojson.UnmarshalOptions{Resolver: testResolver}

// decodeAdmin decodes an admin JSON answer into m.
func decodeAdmin(body []byte, m proto.Message) error {
	return strictAdmin.Unmarshal(body, m)
}

func fetchConfigDump(c *http.Client, admin string) (*xds.Dump, error) {
	body, err := getBody(c, "http://"+admin+"/config_dump?include_eds")
	if err != nil {
		return nil, err
	}
	return xds.DecodeDump(body, strictAdmin)
}
