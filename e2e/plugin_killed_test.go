//go:build e2e

package e2e

import (
	"fmt"
	"slices"
	"testing"
)

// TestPluginKilled_TaskRecovered: while a bridge-mode meshed job runs, the plugin process is SIGKILLed, as a crash
// would. The proxy runs on under its executor; Nomad launches the plugin again and recovers the task: the same
// pilot-agent and Envoy, no restart, the same rules, and interception still works.
func TestPluginKilled_TaskRecovered(t *testing.T) {
	t.Parallel()
	agent := meshAgent(t)
	up := listenOnBridge(t)
	alloc := runBridgeJob(t, agent, "plugin-killed", bridgeVars(t, up.Addr))
	before := snapshotProxy(t, agent, alloc, up.Addr)

	killed := agent.KillPlugin(t)
	pollUntil(t, meshTimeout, "a new plugin process", func() (bool, string) {
		pids := agent.PluginPIDs(t)
		for _, pid := range pids {
			if !slices.Contains(killed, pid) {
				return true, ""
			}
		}
		return false, fmt.Sprintf("plugin pids %v", pids)
	})
	waitAgentLog(t, agent, "task successfully recovered on driver", alloc.ID, "task="+proxyTask)

	checkRecovered(t, agent, alloc, up.Addr, before)
	// The recovered handle must still stop the proxy properly: harness cleanup then finds no leftover.
	agent.StopJob(t, "plugin-killed")
	if !containsSubstring(agent.TaskEvents(t, alloc.ID, proxyTask), "interception rules removed") {
		t.Errorf("the recovered proxy's stop did not remove its interception rules (no event)")
	}
}
