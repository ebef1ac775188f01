//go:build e2e

package e2e

import (
	"strings"
	"testing"

	"github.com/hashicorp/nomad/api"

	"github.com/istio-sidecar/istio-sidecar/e2e/harness"
)

// TestHostMode_MissingStaticPortsFailsClearly: a host-mode meshed group without the proxy's static ports is placed
// (nothing collides), and the driver refuses it with a message saying what to add, before touching the host's
// rules (guardHost checks they are as before). Sequential: host mode.
func TestHostMode_MissingStaticPortsFailsClearly(t *testing.T) {
	guardHost(t)
	agent := meshAgent(t)
	const id = "host-mode-no-static-ports"
	putMeshSecrets(t, agent, id)
	agent.Register(t, agent.ParseJobVars(t, "host-mode-no-static-ports.hcl", "", harness.Vars{"testapp_path": testappBin(t)}))

	alloc := agent.WaitAlloc(t, id, api.AllocClientStatusFailed)
	events := agent.TaskEvents(t, alloc.ID, "istio-proxy")
	if !containsSubstring(events, "must reserve the proxy's capture ports as static ports") {
		t.Errorf("the sidecar's events do not explain the missing static ports:\n%s", strings.Join(events, "\n"))
	}
	if n := countEvents(agent.TaskEventsRaw(t, alloc.ID, "app"), api.TaskStarted); n != 0 {
		t.Errorf("the app started %d times beside a refused sidecar", n)
	}
	if tagged := harness.SnapshotRules(t, "").Tagged(); len(tagged) > 0 {
		t.Errorf("interception rules in the host namespace after the refusal:\n%s", strings.Join(tagged, "\n"))
	}
}
