//go:build e2e

package e2e

import (
	"strings"
	"testing"

	"github.com/hashicorp/nomad/api"

	"github.com/istio-sidecar/istio-sidecar/e2e/harness"
)

// TestHostMode_SecondGroupNotPlaced: two jobs, each one host-mode meshed group reserving the proxy's static ports,
// on a one-node cluster. The first runs; the scheduler does not place the second and says why (a port collision),
// so the driver's host lock is never even contended. Sequential: host mode (see hostmode_helpers_test.go).
func TestHostMode_SecondGroupNotPlaced(t *testing.T) {
	guardHost(t)
	agent := meshAgent(t)
	vars := hostVars(t)

	putMeshSecrets(t, agent, "host-first")
	agent.Register(t, agent.ParseJobVars(t, harness.ExampleFile(t, hostExample), "host-first", vars))
	first := agent.WaitAlloc(t, "host-first", api.AllocClientStatusRunning)
	agent.WaitTaskState(t, first.ID, proxyTask, harness.TaskStateRunning)

	putMeshSecrets(t, agent, "host-second")
	evalID := agent.Register(t, agent.ParseJobVars(t, harness.ExampleFile(t, hostExample), "host-second", vars))
	eval := agent.WaitEval(t, evalID)
	failures := harness.PlacementFailures(eval)
	if eval.BlockedEval == "" || len(failures) == 0 {
		t.Fatalf("the second host-mode job was not blocked: eval %s status %s, blocked eval %q, failures %v",
			eval.ID, eval.Status, eval.BlockedEval, failures)
	}
	if joined := strings.Join(failures, "\n"); !strings.Contains(joined, "port collision") {
		t.Errorf("the placement failure does not name the port collision:\n%s", joined)
	}
	stubs, _, err := agent.Client.Jobs().Allocations("host-second", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(stubs) != 0 {
		t.Errorf("the second host-mode job got %d allocations", len(stubs))
	}
	job, _, err := agent.Client.Jobs().Summary("host-second", nil)
	if err != nil {
		t.Fatal(err)
	}
	if s := job.Summary["app"]; s.Queued != 1 {
		t.Errorf("the second job's group summary: %+v, want 1 queued", s)
	}
	t.Logf("second job blocked: %s", strings.Join(failures, "; "))
	// The first one is untouched.
	agent.WaitTaskState(t, first.ID, proxyTask, harness.TaskStateRunning)
	agent.StopJob(t, "host-first")
}
