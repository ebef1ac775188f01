//go:build e2e

package e2e

import (
	"testing"

	"github.com/istio-sidecar/istio-sidecar/e2e/harness"
)

// TestAgentRestarted_TaskRecovered: the Nomad agent is stopped gracefully and started again on the same data dir
// while a bridge-mode meshed job runs (the client kills its plugins on the way down). The proxy runs on; on start
// the client recovers the task through the new plugin: the same pilot-agent and Envoy, no restart, the same
// rules, and interception still works.
func TestAgentRestarted_TaskRecovered(t *testing.T) {
	t.Parallel()
	agent := meshAgent(t)
	up := listenOnBridge(t)
	alloc := runBridgeJob(t, agent, "agent-restarted", bridgeVars(t, up.Addr))
	before := snapshotProxy(t, agent, alloc, up.Addr)

	agent.Restart(t)
	agent.WaitDriver(t, harness.PluginName, true)

	checkRecovered(t, agent, alloc, up.Addr, before)
	agent.StopJob(t, "agent-restarted")
	if !containsSubstring(agent.TaskEvents(t, alloc.ID, proxyTask), "interception rules removed") {
		t.Errorf("the recovered proxy's stop did not remove its interception rules (no event)")
	}
}
