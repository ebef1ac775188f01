//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestTaskConfig_LabelsReachTheProxy: the example sets labels = { app = ..., version = ... } as users write an
// HCL2 map. The jobspec travels as JSON through Nomad's API to the client, which decodes the config against the
// plugin's spec (a map arrives as a list of maps); the labels must come out in pilot-agent's environment.
func TestTaskConfig_LabelsReachTheProxy(t *testing.T) {
	t.Parallel()
	agent := meshAgent(t)
	up := listenOnBridge(t)
	alloc := runBridgeJob(t, agent, "labels", bridgeVars(t, up.Addr))
	pilot, _ := proxyPIDs(t, agent, alloc.ID)
	environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pilot))
	if err != nil {
		t.Fatal(err)
	}
	var labels string
	for _, kv := range strings.Split(string(environ), "\x00") {
		if v, ok := strings.CutPrefix(kv, "ISTIO_METAJSON_LABELS="); ok {
			labels = v
		}
	}
	for _, want := range []string{`"app":"meshed-app"`, `"version":"v1"`, `"service.istio.io/canonical-name":"meshed-app"`} {
		if !strings.Contains(labels, want) {
			t.Errorf("ISTIO_METAJSON_LABELS = %q, want it to hold %s", labels, want)
		}
	}
	agent.StopJob(t, "labels")
}
