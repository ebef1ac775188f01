package proxy

import (
	"encoding/json"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	meshconfig "istio.io/api/mesh/v1alpha1"
)

func mustLayer(t *testing.T, who Author, doc string) ProxyConfigLayer {
	t.Helper()
	l, err := ParseProxyConfig("proxy_config", who, doc, nil)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// A later layer replaces a top-level field whole, as pilot-agent merges its sources; proxy_headers keeps the
// earlier layer's sub-fields the later one leaves unset, as pilot-agent's correctProxyHeaders does.
func TestMergeProxyConfig_AsPilotAgentMerges(t *testing.T) {
	fleet := mustLayer(t, Fleet, "tracing: {sampling: 1, maxPathTagLength: 99}\nextraStatTags: [a, b]\n"+
		"proxyHeaders: {requestId: {disabled: true}, server: {value: fleet}}\nproxyMetadata: {A: fleet}\n")
	job := mustLayer(t, Job, "tracing: {sampling: 5}\nextraStatTags: [c]\nproxyHeaders: {server: {value: job}}\n")
	pc := MergeProxyConfig(fleet, job)
	if pc.GetTracing().GetSampling() != 5 || pc.GetTracing().GetMaxPathTagLength() != 0 {
		t.Errorf("tracing must be the job's whole: %v", pc.GetTracing())
	}
	if strings.Join(pc.GetExtraStatTags(), ",") != "c" {
		t.Errorf("lists are replaced, not merged: %v", pc.GetExtraStatTags())
	}
	if pc.GetProxyHeaders().GetServer().GetValue() != "job" || !pc.GetProxyHeaders().GetRequestId().GetDisabled().GetValue() {
		t.Errorf("proxy_headers: %v", pc.GetProxyHeaders())
	}
	if pc.GetProxyMetadata()["A"] != "fleet" {
		t.Errorf("the fleet's fields the job leaves alone stay: %v", pc.GetProxyMetadata())
	}
}

// Whatever the layers hold, the rendered document carries the driver's fields and none of the files a
// ProxyConfig could make the proxy load.
func TestRenderProxyConfig_DriverFieldsWin(t *testing.T) {
	pc := &meshconfig.ProxyConfig{BinaryPath: "/bin/sh", CustomConfigFile: "local/evil.json",
		ProxyBootstrapTemplatePath: "local/t.json", StatusPort: 1, DrainDuration: nil}
	doc, err := RenderProxyConfig(pc, Owned{BinaryPath: "/usr/local/bin/envoy", ConfigPath: "./etc/istio/proxy", AdminPort: 15000, StatusPort: 15020})
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(doc), &got); err != nil {
		t.Fatalf("%v: %s", err, doc)
	}
	if got["binaryPath"] != "/usr/local/bin/envoy" || got["statusPort"] != float64(15020) || got["proxyAdminPort"] != float64(15000) ||
		got["customConfigFile"] != nil || got["proxyBootstrapTemplatePath"] != nil {
		t.Fatalf("PROXY_CONFIG: %s", doc)
	}
	again, _ := RenderProxyConfig(pc, Owned{BinaryPath: "/usr/local/bin/envoy", ConfigPath: "./etc/istio/proxy", AdminPort: 15000, StatusPort: 15020})
	if again != doc {
		t.Fatalf("rendering is not stable:\n%s\n%s", doc, again)
	}
}

// Every ProxyConfig field is decided: allowed to a job, owned by the driver, or refused with a reason (or a
// typed field, which the driver names). A field a newer istio.io/api adds fails here until it is placed.
func TestPolicy_EveryProxyConfigFieldIsDecided(t *testing.T) {
	typed := map[protoreflect.Name]bool{"discovery_address": true, "concurrency": true, "termination_drain_duration": true,
		"interception_mode": true, "hold_application_until_proxy_starts": true}
	for i := 0; i < proxyConfigFields.Len(); i++ {
		n := proxyConfigFields.Get(i).Name()
		if JobAllowed[n] || DriverOwned[n] || typed[n] || jobRefusal(n) != "it is not on the allow-list" {
			continue
		}
		t.Errorf("ProxyConfig field %s is neither allowed to jobs, owned by the driver, typed, nor refused with a reason", n)
	}
}
