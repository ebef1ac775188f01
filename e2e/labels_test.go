//go:build e2e

package e2e

import (
	"strings"
	"testing"

	"github.com/hashicorp/nomad/api"

	"github.com/istio-sidecar/istio-sidecar/e2e/harness"
)

// TestTaskConfig_LabelsMapAccepted: a sidecar whose config sets labels = { app = ..., version = ... }, as users
// write an HCL2 map, starts. The jobspec travels as JSON through Nomad's API to the client, which decodes the
// config against the plugin's spec: the spec must accept what that path produces.
func TestTaskConfig_LabelsMapAccepted(t *testing.T) {
	t.Parallel()
	agent := meshAgent(t)
	putMeshSecrets(t, agent, "labels")
	agent.Register(t, agent.ParseJobVars(t, "labels.hcl", "", harness.Vars{"testapp_path": testappBin(t)}))
	alloc := agent.WaitAlloc(t, "labels", api.AllocClientStatusRunning)
	state := agent.WaitTaskState(t, alloc.ID, proxyTask, harness.TaskStateRunning)
	t.Logf("sidecar running; events:\n%s", strings.Join(harness.FormatEvents(state.Events), "\n"))
	agent.StopJob(t, "labels")
}
