package xds

import (
	"fmt"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Dump is one /config_dump, the sections a test reads decoded into go-control-plane's admin types; a section
// the dump did not hold is empty.
type Dump struct {
	Clusters  adminv3.ClustersConfigDump
	Endpoints adminv3.EndpointsConfigDump
	Listeners adminv3.ListenersConfigDump
	Routes    adminv3.RoutesConfigDump
	Secrets   adminv3.SecretsConfigDump
}

// DecodeDump decodes Envoy's admin JSON of a ConfigDump with opts. The caller chooses them because its readers
// differ: a Resolver from NewResolver keeps a typed config no registered message describes (and remembers
// it), and DiscardUnknown suits a proxy whose go-control-plane may be newer than this one, where a strict
// decode proves the stand-in prints only fields Envoy's API has.
func DecodeDump(body []byte, opts protojson.UnmarshalOptions) (*Dump, error) {
	var dump adminv3.ConfigDump
	if err := opts.Unmarshal(body, &dump); err != nil {
		return nil, fmt.Errorf("decoding config_dump: %w", err)
	}
	d := &Dump{}
	for _, a := range dump.GetConfigs() {
		target := d.section(a.GetTypeUrl())
		if target == nil {
			continue
		}
		if err := a.UnmarshalTo(target); err != nil {
			return nil, fmt.Errorf("decoding %s: %w", a.GetTypeUrl(), err)
		}
	}
	return d, nil
}

// section is the field a config_dump entry of that type decodes into, nil for a section no test reads
// (bootstrap, scoped routes, extension configs).
func (d *Dump) section(url string) proto.Message {
	for _, m := range []proto.Message{&d.Clusters, &d.Endpoints, &d.Listeners, &d.Routes, &d.Secrets} {
		if url == typeURL(m) {
			return m
		}
	}
	return nil
}
