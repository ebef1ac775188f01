//go:build e2e

package e2e

import (
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/hashicorp/nomad/api"

	"github.com/istio-sidecar/istio-sidecar/e2e/harness"
)

// TestBridgeMode_ThreeGroupsOnOneNode: three bridge-mode meshed groups run at once on the one node; each app's
// outbound connection is captured by its own Envoy in its own namespace (its own connection log, its own source
// address, its own rules), and the host namespace holds no interception rule at all.
func TestBridgeMode_ThreeGroupsOnOneNode(t *testing.T) {
	t.Parallel()
	agent := meshAgent(t)
	up := listenOnBridge(t)
	ids := []string{"bridge-a", "bridge-b", "bridge-c"}
	for _, id := range ids {
		putMeshSecrets(t, agent, id)
		agent.Register(t, agent.ParseJobVars(t, harness.ExampleFile(t, bridgeExample), id, bridgeVars(t, up.Addr)))
	}
	allocs := map[string]*api.Allocation{}
	for _, id := range ids {
		allocs[id] = agent.WaitAlloc(t, id, api.AllocClientStatusRunning)
		for _, task := range []string{proxyTask, serverTask, clientTask} {
			agent.WaitTaskState(t, allocs[id].ID, task, harness.TaskStateRunning)
		}
	}
	for _, id := range ids {
		alloc := allocs[id]
		addr := allocAddress(t, agent, alloc.ID)
		recs := waitConnLog(t, connLogPath(agent, alloc.ID), up.Addr, 0)
		for _, r := range recs {
			if host, _, _ := net.SplitHostPort(r.Src); host != addr {
				t.Errorf("job %s: its Envoy captured a connection from %s, not from its own address %s", id, r.Src, addr)
			}
		}
		tagged := harness.SnapshotRules(t, harness.NetnsPath(alloc.ID)).Tagged()
		if len(tagged) == 0 {
			t.Errorf("job %s: no interception rules in its namespace", id)
		}
		for _, l := range tagged {
			if strings.Contains(l, harness.RuleTag) && !strings.Contains(l, harness.RuleTag+alloc.ID) {
				t.Errorf("job %s: a rule of another allocation in its namespace: %s", id, l)
			}
		}
		t.Logf("job %s (%s): %d connections captured from %s", id, alloc.ID[:8], len(recs), addr)
	}
	if tagged := harness.SnapshotRules(t, "").Tagged(); len(tagged) > 0 {
		t.Errorf("interception rules in the host namespace with only bridge-mode groups running:\n%s", strings.Join(tagged, "\n"))
	}
}

// allocAddress is the allocation's address in Nomad's bridge network.
func allocAddress(t *testing.T, agent *harness.Agent, allocID string) string {
	t.Helper()
	var addr string
	pollUntil(t, meshTimeout, "the allocation's network address", func() (bool, string) {
		al, _, err := agent.Client.Allocations().Info(allocID, nil)
		if err != nil {
			return false, err.Error()
		}
		if al.NetworkStatus != nil {
			addr = al.NetworkStatus.Address
		}
		return addr != "", fmt.Sprintf("network status %+v", al.NetworkStatus)
	})
	return addr
}
