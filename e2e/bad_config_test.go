//go:build e2e

package e2e

import (
	"strings"
	"testing"

	"github.com/hashicorp/nomad/api"

	"github.com/istio-sidecar/istio-sidecar/e2e/harness"
)

// TestBadTaskConfig_AllocFailsWithClearMessage: a sidecar with log_level = "loud" fails its allocation, and the
// task's events (what `nomad alloc status` shows) name the field and the value; the app never starts.
func TestBadTaskConfig_AllocFailsWithClearMessage(t *testing.T) {
	t.Parallel()
	agent := meshAgent(t)
	vars := bridgeVars(t, bridgeGateway+":9")
	vars["log_level"] = "loud"
	putMeshSecrets(t, agent, "bad-config")
	agent.Register(t, agent.ParseJobVars(t, harness.ExampleFile(t, bridgeExample), "bad-config", vars))

	alloc := agent.WaitAlloc(t, "bad-config", api.AllocClientStatusFailed)
	events := agent.TaskEvents(t, alloc.ID, proxyTask)
	if !containsSubstring(events, `log_level: "loud"`) {
		t.Errorf("the sidecar's events do not name log_level and \"loud\":\n%s", strings.Join(events, "\n"))
	}
	for _, task := range []string{serverTask, clientTask} {
		if n := countEvents(agent.TaskEventsRaw(t, alloc.ID, task), api.TaskStarted); n != 0 {
			t.Errorf("task %s started %d times beside a sidecar that never started", task, n)
		}
	}
	t.Logf("events:\n%s", strings.Join(events, "\n"))
}
