//go:build e2e

package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/istio-sidecar/istio-sidecar/e2e/harness"
)

// TestOrdering_AppsFirstConnectionIsIntercepted: in bridge mode, an app that calls a service outside its group
// the instant it starts has that very first connection captured by Envoy, with its original destination, and it
// succeeds; the sidecar was ready before Nomad started the app.
func TestOrdering_AppsFirstConnectionIsIntercepted(t *testing.T) {
	t.Parallel()
	agent := meshAgent(t)
	up := listenOnBridge(t)
	alloc := runBridgeJob(t, agent, "ordering", bridgeVars(t, up.Addr))
	logPath := connLogPath(agent, alloc.ID)

	recs := waitConnLog(t, logPath, up.Addr, 0)
	var lines []string
	pollUntil(t, meshTimeout, "the client's first call", func() (bool, string) {
		lines = clientLines(t, agent, alloc.ID)
		return len(lines) > 0, "no call yet"
	})
	if want := "call " + up.Addr + " ok"; lines[0] != want {
		t.Errorf("the client's first call: %q, want %q (all: %q)", lines[0], want, lines)
	}
	if recs[0].Outcome != "forwarded" {
		t.Errorf("the first captured connection was %s (%s), want forwarded", recs[0].Outcome, recs[0].Error)
	}
	// Nothing else in the namespace calls out: every connection the upstream saw came through Envoy, so the
	// first one the app made did too (a bypassing first call would reach the upstream uncounted by Envoy).
	if got, captured := up.accepted.Load(), int64(len(readConnLog(t, logPath, up.Addr))); got > captured {
		t.Errorf("the upstream accepted %d connections but Envoy captured only %d: some bypassed the proxy", got, captured)
	}

	proxyEvents := agent.TaskEventsRaw(t, alloc.ID, proxyTask)
	ready := findEvent(proxyEvents, func(e *api.TaskEvent) bool {
		return strings.HasPrefix(harness.EventMessage(e), "Proxy ready after ")
	})
	started := findEvent(agent.TaskEventsRaw(t, alloc.ID, clientTask), func(e *api.TaskEvent) bool {
		return e.Type == api.TaskStarted
	})
	switch {
	case ready == nil:
		t.Errorf("no \"Proxy ready after N ms\" event; proxy events:\n%s", strings.Join(harness.FormatEvents(proxyEvents), "\n"))
	case started == nil:
		t.Errorf("the client has no Started event")
	case ready.Time > started.Time:
		t.Errorf("the proxy was ready at %s, after the client started at %s", eventTime(ready), eventTime(started))
	default:
		t.Logf("proxy %q at %s; client started %s later; first capture %s",
			harness.EventMessage(ready), eventTime(ready), time.Duration(started.Time-ready.Time), recs[0].Time.Format(time.RFC3339Nano))
	}
	agent.StopJob(t, "ordering")
}

func findEvent(events []*api.TaskEvent, match func(*api.TaskEvent) bool) *api.TaskEvent {
	for _, e := range events {
		if match(e) {
			return e
		}
	}
	return nil
}

func eventTime(e *api.TaskEvent) string {
	return time.Unix(0, e.Time).UTC().Format(time.RFC3339Nano)
}
