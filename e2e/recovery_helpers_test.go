//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/nomad/api"

	"github.com/istio-sidecar/istio-sidecar/e2e/harness"
)

// proxySnapshot is what must not change when the driver recovers a running sidecar.
type proxySnapshot struct {
	pilot, envoy int
	rules        harness.Rules
	// lastEvent is the time of the task's newest event: Nomad keeps only a task's last 10 events, so events
	// are told apart by time, not by position.
	lastEvent int64
	captured  int
}

func snapshotProxy(t *testing.T, agent *harness.Agent, alloc *api.Allocation, upstream string) proxySnapshot {
	t.Helper()
	pilot, envoy := proxyPIDs(t, agent, alloc.ID)
	return proxySnapshot{
		pilot:     pilot,
		envoy:     envoy,
		rules:     harness.SnapshotRules(t, harness.NetnsPath(alloc.ID)),
		lastEvent: lastEventTime(agent.TaskEventsRaw(t, alloc.ID, proxyTask)),
		captured:  len(waitConnLog(t, connLogPath(agent, alloc.ID), upstream, 0)),
	}
}

// checkRecovered asserts that the sidecar was recovered rather than restarted: the same processes, no second
// proxy, no restart among the task's events, the namespace's rules unchanged, and interception still working.
func checkRecovered(t *testing.T, agent *harness.Agent, alloc *api.Allocation, upstream string, before proxySnapshot) {
	t.Helper()
	agent.WaitTaskState(t, alloc.ID, proxyTask, harness.TaskStateRunning)
	for name, pid := range map[string]int{"pilot-agent": before.pilot, "Envoy": before.envoy} {
		if !harness.Alive(pid) {
			t.Errorf("%s pid %d is gone", name, pid)
		}
	}
	if children := harness.ChildPIDs(before.pilot); !slices.Equal(children, []int{before.envoy}) {
		t.Errorf("pilot-agent pid %d has children %v, want only Envoy pid %d", before.pilot, children, before.envoy)
	}
	if procs := agent.ProcsMatching(t, "pilot-agent proxy"); len(procs) != 1 {
		t.Errorf("%d pilot-agent processes run for this agent (%v), want 1", len(procs), procs)
	}
	events := agent.TaskEventsRaw(t, alloc.ID, proxyTask)
	for _, e := range events {
		switch {
		case e.Time <= before.lastEvent:
		case e.Type == api.TaskRestarting, e.Type == api.TaskTerminated, e.Type == api.TaskKilled,
			strings.HasPrefix(harness.EventMessage(e), "Proxy started"):
			t.Errorf("the sidecar was restarted, not recovered: event %s: %s", e.Type, harness.EventMessage(e))
		}
	}
	for _, pid := range harness.PilotAgentPIDs(events) {
		if pid != before.pilot {
			t.Errorf("a second proxy was started (pilot-agent pid %d, the first %d)", pid, before.pilot)
		}
	}
	after := harness.SnapshotRules(t, harness.NetnsPath(alloc.ID))
	if diff := before.rules.Diff(after); diff != nil {
		t.Errorf("the allocation's netfilter rules changed:\n%s", strings.Join(diff, "\n"))
	}
	recs := waitConnLog(t, connLogPath(agent, alloc.ID), upstream, before.captured)
	t.Logf("interception still works: %d captured connections to %s, %d before", len(recs), upstream, before.captured)
}

func lastEventTime(events []*api.TaskEvent) int64 {
	var last int64
	for _, e := range events {
		last = max(last, e.Time)
	}
	return last
}

// newProxyStart reports the pilot-agent pid of a "Proxy started" event with another pid than old, or 0.
func newProxyStart(t *testing.T, agent *harness.Agent, allocID string, old int) int {
	t.Helper()
	for _, pid := range harness.PilotAgentPIDs(agent.TaskEventsRaw(t, allocID, proxyTask)) {
		if pid != old {
			return pid
		}
	}
	return 0
}

// waitAgentLog waits until the agent's log has a line containing every one of parts, and returns the line.
func waitAgentLog(t *testing.T, agent *harness.Agent, parts ...string) string {
	t.Helper()
	var found string
	pollUntil(t, meshTimeout, fmt.Sprintf("agent log line with %q", parts), func() (bool, string) {
		data, err := os.ReadFile(agent.LogPath)
		if err != nil {
			return false, err.Error()
		}
		for _, line := range strings.Split(string(data), "\n") {
			all := true
			for _, p := range parts {
				all = all && strings.Contains(line, p)
			}
			if all {
				found = line
				return true, ""
			}
		}
		return false, "not yet"
	})
	return found
}
