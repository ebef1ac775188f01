//go:build e2e

package e2e

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/istio-sidecar/istio-sidecar/e2e/harness"
)

// TestEnvoyKilled_RulesStayAndSidecarRestarts: Envoy of a running bridge-mode group is SIGKILLed. While the
// sidecar is down the interception rules stay, so the app's calls fail (connection refused on the dead 15001)
// instead of leaving the mesh; Nomad restarts the sidecar per its restart block, and interception works again.
func TestEnvoyKilled_RulesStayAndSidecarRestarts(t *testing.T) {
	t.Parallel()
	agent := meshAgent(t)
	up := listenOnBridge(t)
	vars := bridgeVars(t, up.Addr)
	// Long enough to watch the app while the proxy is down, short enough for the suite.
	vars["proxy_restart_delay"] = "5s"
	alloc := runBridgeJob(t, agent, "envoy-killed", vars)
	logPath := connLogPath(agent, alloc.ID)
	waitConnLog(t, logPath, up.Addr, 0)
	pilot, envoy := proxyPIDs(t, agent, alloc.ID)
	netns := harness.NetnsPath(alloc.ID)
	rulesBefore := harness.SnapshotRules(t, netns)
	callsBefore := len(clientLines(t, agent, alloc.ID))
	clientStarts := countEvents(agent.TaskEventsRaw(t, alloc.ID, clientTask), api.TaskStarted)

	if err := syscall.Kill(envoy, syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL Envoy pid %d: %v", envoy, err)
	}
	killedAt := time.Now()
	t.Logf("SIGKILLed Envoy pid %d (pilot-agent pid %d)", envoy, pilot)

	// While the proxy is down: the app's next call is refused, and the rules are those of before.
	refused := waitRefusedCall(t, agent, alloc.ID, callsBefore)
	rulesDown := harness.SnapshotRules(t, netns)
	if pid := newProxyStart(t, agent, alloc.ID, pilot); pid != 0 {
		t.Logf("note: the sidecar restarted (pilot-agent pid %d) before the rules were read; they may be the new start's", pid)
	}
	if diff := rulesBefore.Diff(rulesDown); diff != nil {
		t.Errorf("the rules changed while the proxy was down:\n%s", strings.Join(diff, "\n"))
	}
	if len(rulesDown.Tagged()) == 0 {
		t.Errorf("no interception rules while the proxy was down: the app's traffic bypasses the mesh")
	}
	t.Logf("while down, %s: %q", time.Since(killedAt).Round(time.Millisecond), refused)
	// Nothing reached the upstream except through Envoy: a bypassing call would be accepted but not logged.
	if got, captured := up.accepted.Load(), int64(len(readConnLog(t, logPath, up.Addr))); got > captured {
		t.Errorf("the upstream accepted %d connections, Envoy captured %d: some bypassed the dead proxy", got, captured)
	}

	restarted := waitSidecarRestarted(t, agent, alloc.ID, pilot, logPath, up.Addr)
	t.Logf("restart event %q; the client started %d time(s) before and %d after",
		harness.EventMessage(restarted), clientStarts, countEvents(agent.TaskEventsRaw(t, alloc.ID, clientTask), api.TaskStarted))
	agent.StopJob(t, "envoy-killed")
}

// waitRefusedCall waits for a call of the app, after the first callsBefore, that was refused, and returns its line.
func waitRefusedCall(t *testing.T, agent *harness.Agent, allocID string, callsBefore int) string {
	t.Helper()
	var refused string
	pollUntil(t, 30*time.Second, "a refused call while the proxy is down", func() (bool, string) {
		lines := clientLines(t, agent, allocID)
		for _, l := range lines[min(callsBefore, len(lines)):] {
			if strings.HasSuffix(l, "failed: connection refused") {
				refused = l
				return true, ""
			}
		}
		return false, fmt.Sprintf("calls since the kill: %q", lines[min(callsBefore, len(lines)):])
	})
	return refused
}

// waitSidecarRestarted waits until Nomad restarted the sidecar: a new pilot-agent, ready, new connections to
// upAddr captured and an ok call; it returns the Restarting event.
func waitSidecarRestarted(t *testing.T, agent *harness.Agent, allocID string, pilot int, logPath, upAddr string) *api.TaskEvent {
	t.Helper()
	restarted := agent.WaitTaskEvent(t, allocID, proxyTask, "a Restarting event", meshTimeout, func(e *api.TaskEvent) bool {
		return e.Type == api.TaskRestarting
	})
	pollUntil(t, meshTimeout, "a second proxy start", func() (bool, string) {
		return newProxyStart(t, agent, allocID, pilot) != 0, "no new \"Proxy started\" event"
	})
	agent.WaitTaskState(t, allocID, proxyTask, harness.TaskStateRunning)
	newPilot, _ := proxyPIDs(t, agent, allocID)
	if newPilot == pilot || harness.Alive(pilot) {
		t.Errorf("pilot-agent pid %d (alive=%t) after the restart, before %d", newPilot, harness.Alive(pilot), pilot)
	}
	capturedBefore := len(readConnLog(t, logPath, upAddr))
	waitConnLog(t, logPath, upAddr, capturedBefore)
	pollUntil(t, meshTimeout, "an ok call after the restart", func() (bool, string) {
		lines := clientLines(t, agent, allocID)
		return len(lines) > 0 && strings.HasSuffix(lines[len(lines)-1], " ok"), fmt.Sprintf("last call %q", lines[len(lines)-1:])
	})
	return restarted
}

func countEvents(events []*api.TaskEvent, typ string) int {
	n := 0
	for _, e := range events {
		if e.Type == typ {
			n++
		}
	}
	return n
}
