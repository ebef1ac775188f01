//go:build e2e

package e2e

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/nomad/api"

	"github.com/istio-sidecar/istio-sidecar/e2e/harness"
)

// TestLongTaskName_ProxyStarts: a sidecar task named with 34 characters starts. pilot-agent binds its XDS proxy's
// unix socket at <configPath>/XDS; with configPath in the task directory that path must fit in sun_path (107
// bytes), which on a real data_dir (/opt/nomad/data/alloc/<36-character ID>/<task>/etc/istio/proxy/XDS) leaves
// a task name of at most 28 characters.
func TestLongTaskName_ProxyStarts(t *testing.T) {
	t.Parallel()
	const task = "istio-proxy-payments-api-v2-canary"
	agent := meshAgent(t)
	putMeshSecrets(t, agent, "long-task-name")
	agent.Register(t, agent.ParseJobVars(t, "long-task-name.hcl", "", harness.Vars{"testapp_path": testappBin(t)}))
	alloc := agent.WaitAlloc(t, "long-task-name", api.AllocClientStatusRunning)
	state := agent.WaitTaskState(t, alloc.ID, task, harness.TaskStateRunning)
	xds := filepath.Join(agent.AllocDir(alloc.ID), task, "etc/istio/proxy/XDS")
	t.Logf("sidecar running with its XDS socket at %s (%d bytes); events:\n%s",
		xds, len(xds), strings.Join(harness.FormatEvents(state.Events), "\n"))
	agent.StopJob(t, "long-task-name")
}
