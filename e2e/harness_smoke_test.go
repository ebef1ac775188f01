//go:build e2e

package e2e

import (
	"strings"
	"testing"

	"github.com/hashicorp/nomad/api"
	"github.com/istio-sidecar/istio-sidecar/e2e/harness"
)

// TestHarness_RawExecSmoke proves the harness on its own, without the plugin: an agent starts on free ports, a job
// from e2e/jobs is parsed by the agent with a variable, runs under raw_exec and completes, and its events and logs
// are readable. Cleanup then proves that nothing of the agent is left.
func TestHarness_RawExecSmoke(t *testing.T) {
	agent := harness.Start(t, harness.Options{})
	agent.WaitDriver(t, "raw_exec", true)

	const message = "hello from the e2e harness"
	job, _ := agent.RegisterJob(t, "raw-exec-smoke.hcl", map[string]string{"message": message})
	alloc := agent.WaitAlloc(t, *job.ID, api.AllocClientStatusComplete)

	state := agent.WaitTaskState(t, alloc.ID, "hello", harness.TaskStateDead)
	events := agent.TaskEvents(t, alloc.ID, "hello")
	if state.Failed {
		t.Fatalf("task failed; events:\n%s", strings.Join(events, "\n"))
	}
	for _, want := range []string{"Started", "Terminated: Exit Code: 0"} {
		if !containsPrefix(events, want) {
			t.Errorf("no %q among the task's events:\n%s", want, strings.Join(events, "\n"))
		}
	}
	if out := agent.TaskLogs(t, alloc.ID, "hello", "stdout"); out != message+"\n" {
		t.Errorf("stdout = %q, want %q", out, message+"\n")
	}
	if errOut := agent.TaskLogs(t, alloc.ID, "hello", "stderr"); !strings.Contains(errOut, "alloc "+alloc.ID) {
		t.Errorf("stderr = %q, want the allocation ID %s", errOut, alloc.ID)
	}
	agent.StopJob(t, *job.ID)
}

func containsPrefix(lines []string, prefix string) bool {
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}
