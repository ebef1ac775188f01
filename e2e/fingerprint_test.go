//go:build e2e

package e2e

import (
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/nomad/api"
	"github.com/istio-sidecar/istio-sidecar/e2e/harness"
)

var (
	// pilot-agent reports Istio's VERSION file plus "-dev" for builds from source (1.31-dev) and X.Y.Z for releases.
	pilotAgentVersion = regexp.MustCompile(`^[0-9]+\.[0-9]+(\.[0-9]+)?(-[0-9A-Za-z.]+)?$`)
	// Envoy's `--version` carries X.Y.Z in its second slash-separated field.
	envoyVersion = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+$`)
)

// TestFingerprint_Healthy: with pilot-agent and Envoy in place the node shows the driver detected and healthy, with
// every fingerprint attribute set.
func TestFingerprint_Healthy(t *testing.T) {
	agent := harness.Start(t, pluginOptions(t))
	info := agent.WaitDriver(t, harness.PluginName, true)

	attrs := info.Attributes
	for _, key := range []string{"version", "pilot_agent.version", "envoy.version", "iptables.backend", "iptables.version"} {
		if attrs["driver.istio-sidecar."+key] == "" {
			t.Errorf("attribute driver.istio-sidecar.%s is empty; driver: %s", key, harness.DescribeDriver(info))
		}
	}
	if v := attrs["driver.istio-sidecar.pilot_agent.version"]; !pilotAgentVersion.MatchString(v) {
		t.Errorf("driver.istio-sidecar.pilot_agent.version = %q, want a version like 1.31-dev", v)
	}
	if v := attrs["driver.istio-sidecar.envoy.version"]; !envoyVersion.MatchString(v) {
		t.Errorf("driver.istio-sidecar.envoy.version = %q, want X.Y.Z", v)
	}
	// The client sets driver.<name> itself from Detected; the scheduler's driver check reads it as a bool.
	node := agent.Node(t)
	if enabled, err := strconv.ParseBool(node.Attributes["driver.istio-sidecar"]); err != nil || !enabled {
		t.Errorf("node attribute driver.istio-sidecar = %q, want true", node.Attributes["driver.istio-sidecar"])
	}
}

// TestFingerprint_PilotAgentMissing: with pilot_agent_path pointing at a missing file the driver is detected but
// unhealthy, its description names the file, and a job using the driver is not placed: the scheduler filters the
// node for missing drivers and blocks the evaluation.
func TestFingerprint_PilotAgentMissing(t *testing.T) {
	opts := pluginOptions(t)
	missing := filepath.Join(t.TempDir(), "no-such-pilot-agent")
	opts.PluginConfig["pilot_agent_path"] = missing
	agent := harness.Start(t, opts)

	info := agent.WaitDriver(t, harness.PluginName, false)
	desc := info.HealthDescription
	if !strings.Contains(desc, "pilot-agent") || !strings.Contains(desc, missing) {
		t.Errorf("health description %q should name pilot-agent and %s", desc, missing)
	}

	job, evalID := agent.RegisterJob(t, "pilot-agent-missing.hcl", nil)
	eval := agent.WaitEval(t, evalID)
	failures := harness.PlacementFailures(eval)
	if eval.BlockedEval == "" || len(failures) == 0 {
		t.Fatalf("job %s was not blocked: eval %s status %s, blocked eval %q, failures %v",
			*job.ID, eval.ID, eval.Status, eval.BlockedEval, failures)
	}
	if !strings.Contains(strings.Join(failures, "\n"), `"missing drivers"`) {
		t.Errorf("placement failures do not name the missing driver:\n%s", strings.Join(failures, "\n"))
	}
	stubs, _, err := agent.Client.Jobs().Allocations(*job.ID, true, nil)
	if err != nil {
		t.Fatalf("listing allocations of %s: %v", *job.ID, err)
	}
	if len(stubs) != 0 {
		t.Errorf("job %s got %d allocations on a node whose driver is unhealthy", *job.ID, len(stubs))
	}
	blocked := agent.WaitEval(t, eval.BlockedEval)
	if blocked.Status != api.EvalStatusBlocked {
		t.Errorf("blocked evaluation %s has status %s, want blocked", blocked.ID, blocked.Status)
	}
	t.Logf("placement blocked as expected: %s", strings.Join(failures, "; "))
}
