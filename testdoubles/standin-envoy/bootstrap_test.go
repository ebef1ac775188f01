package main

import (
	"net/netip"
	"os"
	"strings"
	"testing"
)

func mustAddrPort(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

const hcmType = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"

// The testdata bootstraps were written by the real pilot-agent from Istio's template (testdata/generate.sh).
func TestParseGeneratedBootstraps(t *testing.T) {
	cases := []struct {
		file                    string
		admin                   string
		prom, health, agent, ad string
	}{
		{"testdata/bootstrap-default.json", "127.0.0.1:15000", "0.0.0.0:15090", "0.0.0.0:15021", "127.0.0.1:15020", "127.0.0.1:15000"},
		{"testdata/bootstrap-custom-ports.json", "127.0.0.1:16000", "0.0.0.0:16090", "0.0.0.0:16021", "127.0.0.1:16020", "127.0.0.1:16000"},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			b, err := loadBootstrap(tc.file, "")
			if err != nil {
				t.Fatalf("loadBootstrap: %v", err)
			}
			if b.admin != mustAddrPort(tc.admin) {
				t.Errorf("admin = %s, want %s", b.admin, tc.admin)
			}
			want := []httpListener{
				{addrs: []netip.AddrPort{mustAddrPort(tc.prom)}, routes: []route{{"/stats/prometheus", "prometheus_stats", mustAddrPort(tc.ad)}}},
				{addrs: []netip.AddrPort{mustAddrPort(tc.health)}, routes: []route{{"/healthz/ready", "agent", mustAddrPort(tc.agent)}}},
			}
			if len(b.httpListeners) != len(want) {
				t.Fatalf("listeners = %+v, want %d", b.httpListeners, len(want))
			}
			for i, w := range want {
				got := b.httpListeners[i]
				if len(got.addrs) != 1 || got.addrs[0] != w.addrs[0] || len(got.routes) != 1 || got.routes[0] != w.routes[0] {
					t.Errorf("listener %d = %+v, want %+v", i, got, w)
				}
			}
			if !strings.HasPrefix(b.proto.GetNode().GetId(), "sidecar~10.211.0.2~app-0.default~") {
				t.Errorf("node id = %q", b.proto.GetNode().GetId())
			}
			// pilot-agent's XDS proxy and SDS server, relative to its working directory.
			if b.pipes["xds-grpc"] != "./etc/istio/proxy/XDS" || b.pipes["sds-grpc"] != "./var/run/secrets/workload-spiffe-uds/socket" {
				t.Errorf("pipes = %v", b.pipes)
			}
			cfg, err := xdsConfig(b)
			// Relative, as Envoy dials them: absolute, a deep task directory's would pass sun_path's 107 bytes.
			if err != nil || !cfg.Delta || cfg.ADSPath != "./etc/istio/proxy/XDS" ||
				cfg.SDSPaths["sds-grpc"] != "./var/run/secrets/workload-spiffe-uds/socket" {
				t.Errorf("xdsConfig = %+v, %v; want delta ADS on the XDS socket, relative to the working directory", cfg, err)
			}
		})
	}
}

func TestParseBootstrapDefaultsWhenAbsent(t *testing.T) {
	b, err := parseBootstrap([]byte(`{"node":{"id":"x"}}`), "")
	if err != nil {
		t.Fatal(err)
	}
	if b.admin != mustAddrPort("127.0.0.1:15000") || len(b.httpListeners) != 2 ||
		b.httpListeners[1].routes[0].upstream != mustAddrPort("127.0.0.1:15020") {
		t.Errorf("defaults = %+v", b)
	}
}

func TestParseBootstrapDualStackAndTLS(t *testing.T) {
	doc := `{"static_resources":{
	  "clusters":[{"name":"agent","load_assignment":{"endpoints":[{"lb_endpoints":[{"endpoint":{"address":{"socket_address":{"address":"::1","port_value":"15020"}}}}]}]}}],
	  "listeners":[
	    {"name":"health","address":{"socket_address":{"address":"0.0.0.0","port_value":15021}},
	     "additionalAddresses":[{"address":{"socket_address":{"address":"::","port_value":15021}}}],
	     "filter_chains":[{"filters":[{"typed_config":{"@type":"` + hcmType + `","route_config":{"virtual_hosts":[{"routes":[
	       {"match":{"prefix":"/healthz/ready"},"route":{"cluster":"agent"}},
	       {"match":{"prefix":"/x"},"route":{"cluster":"missing"}}]}]}}}]}]},
	    {"name":"secure","address":{"socket_address":{"address":"0.0.0.0","port_value":15091}},
	     "filter_chains":[{"transport_socket":{"name":"tls"},"filters":[]}]}]}}`
	b, err := parseBootstrap([]byte(doc), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(b.httpListeners) != 1 || len(b.skipped) != 1 || b.skipped[0] != "secure" {
		t.Fatalf("listeners %+v skipped %v", b.httpListeners, b.skipped)
	}
	l := b.httpListeners[0]
	if len(l.addrs) != 2 || l.addrs[1] != mustAddrPort("[::]:15021") {
		t.Errorf("addrs = %v", l.addrs)
	}
	if l.routes[0].upstream != mustAddrPort("[::1]:15020") || l.routes[1].upstream.IsValid() {
		t.Errorf("routes = %+v", l.routes)
	}
}

func TestConfigYAMLMergesLikeProto(t *testing.T) {
	data, err := os.ReadFile("testdata/bootstrap-default.json")
	if err != nil {
		t.Fatal(err)
	}
	overlay := `{"admin":{"address":{"socket_address":{"port_value":15100}}},
	  "static_resources":{"listeners":[{"name":"extra","address":{"socket_address":{"address":"127.0.0.1","port_value":15999}},
	  "filter_chains":[{"filters":[{"typed_config":{"@type":"` + hcmType + `","route_config":{"virtual_hosts":[{"routes":[{"match":{"prefix":"/"},"route":{"cluster":"agent"}}]}]}}}]}]}]}}`
	b, err := parseBootstrap(data, overlay)
	if err != nil {
		t.Fatal(err)
	}
	if b.admin != mustAddrPort("127.0.0.1:15100") {
		t.Errorf("admin = %s: scalar fields must be replaced, siblings kept", b.admin)
	}
	if len(b.httpListeners) != 3 || b.httpListeners[2].name != "extra" {
		t.Errorf("listeners = %+v: repeated fields must append", b.httpListeners)
	}
}

func TestParseBootstrapErrors(t *testing.T) {
	for _, doc := range []string{
		`not json`,
		`{"admin":{"address":{"socket_address":{"address":"localhost","port_value":15000}}}}`,
		`{"admin":{"address":{"socket_address":{"address":"127.0.0.1","port_value":70000}}}}`,
		`{"static_resources":{"listeners":[{"name":"x","filter_chains":[{"filters":[{"typed_config":{"route_config":{}}}]}]}]}}`,
	} {
		if _, err := parseBootstrap([]byte(doc), ""); err == nil {
			t.Errorf("parseBootstrap(%s) succeeded", doc)
		}
	}
}

func TestXDSConfigNeedsADS(t *testing.T) {
	b, err := parseBootstrap([]byte(`{"node":{"id":"x"}}`), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := xdsConfig(b); err == nil || !strings.Contains(err.Error(), envControlPlane+"=none") {
		t.Errorf("xdsConfig without ads_config = %v, want an error pointing at %s=none", err, envControlPlane)
	}
}
