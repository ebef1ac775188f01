//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/nomad/api"

	"github.com/istio-sidecar/istio-sidecar/e2e/harness"
)

// TestAppProber_NomadCheckFollowsTheAppThroughTheAgent: Nomad's own check of a meshed service, with every
// inbound port captured, passes through pilot-agent's status port while the app is healthy, fails when the app
// reports unhealthy, and passes again when it recovers.
func TestAppProber_NomadCheckFollowsTheAppThroughTheAgent(t *testing.T) {
	t.Parallel()
	agent := meshAgent(t)
	agent.PutVariable(t, "nomad/jobs/app-prober", map[string]string{"root_cert": rootCertPEM(t)})
	agent.Register(t, agent.ParseJobVars(t, "app-prober.hcl", "", harness.Vars{"testapp_path": testappBin(t)}))
	alloc := agent.WaitAlloc(t, "app-prober", api.AllocClientStatusRunning)
	agent.WaitTaskState(t, alloc.ID, "server", harness.TaskStateRunning)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("istio-proxy:\n%s\nserver:\n%s", agent.TaskLogs(t, alloc.ID, "istio-proxy", "stdout")+agent.TaskLogs(t, alloc.ID, "istio-proxy", "stderr"),
				agent.TaskLogs(t, alloc.ID, "server", "stdout"))
		}
	})

	checkIs := func(want string) { waitCheck(t, agent, alloc.ID, want) }
	checkIs("success")
	unhealthy := filepath.Join(agent.AllocDir(alloc.ID), "alloc", "unhealthy")
	if err := os.WriteFile(unhealthy, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	checkIs("failure")
	if err := os.Remove(unhealthy); err != nil {
		t.Fatal(err)
	}
	checkIs("success")
	agent.StopJob(t, "app-prober")
	agent.WaitAllocsTerminal(t, "app-prober")
}

// waitCheck waits until the allocation's (one) Nomad service check has the status ("success", "failure").
func waitCheck(t *testing.T, agent *harness.Agent, allocID, want string) {
	t.Helper()
	pollUntil(t, meshTimeout, "the service check to be "+want, func() (bool, string) {
		st, err := agent.Client.Allocations().Checks(allocID, nil)
		if err != nil {
			return false, err.Error()
		}
		for _, c := range st {
			return c.Status == want, fmt.Sprintf("%s %s (HTTP %d): %s", c.Check, c.Status, c.StatusCode, c.Output)
		}
		return false, "no check result yet"
	})
}
