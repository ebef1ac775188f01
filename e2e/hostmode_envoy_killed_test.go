//go:build e2e

package e2e

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/istio-sidecar/istio-sidecar/e2e/harness"
)

// TestHostMode_NodeStaysReadyWhenEnvoyDies: Envoy of a host-mode meshed group dies, its rules stay in the host
// namespace until the sidecar is back, and meanwhile the node goes on answering and stays ready: the agent's own
// traffic is never captured. Sequential: host mode.
func TestHostMode_NodeStaysReadyWhenEnvoyDies(t *testing.T) {
	guardHost(t)
	agent := meshAgent(t)
	vars := hostVars(t)
	vars["proxy_restart_delay"] = "5s"
	const id = "host-envoy-killed"
	putMeshSecrets(t, agent, id)
	agent.Register(t, agent.ParseJobVars(t, harness.ExampleFile(t, hostExample), id, vars))
	alloc := agent.WaitAlloc(t, id, api.AllocClientStatusRunning)
	agent.WaitTaskState(t, alloc.ID, proxyTask, harness.TaskStateRunning)
	tagged := harness.SnapshotRules(t, "").Tagged()
	if len(tagged) == 0 {
		t.Fatalf("no interception rules in the host namespace while the host-mode sidecar runs")
	}
	// A host with a global IPv6 address is captured in IPv6 too, and then needs Istio's ::6 on lo (ours: nodad);
	// guardHost checks that it goes again.
	if containsSubstring(tagged, "ip6tables-save ") {
		if lo := loAddrs(t); !strings.Contains(lo, " ::6/128 scope global nodad ") {
			t.Errorf("IPv6 rules in the host namespace but no ::6/128 of ours on lo:\n%s", lo)
		}
	} else {
		t.Logf("the host has no global IPv6 address: IPv6 interception and ::6 not exercised")
	}
	pilot, envoy := proxyPIDs(t, agent, alloc.ID)

	if err := syscall.Kill(envoy, syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL Envoy pid %d: %v", envoy, err)
	}
	t.Logf("SIGKILLed Envoy pid %d (pilot-agent pid %d)", envoy, pilot)

	checks, sawRulesDown := watchNodeUntilRestart(t, agent, alloc.ID, pilot)
	if !sawRulesDown {
		t.Errorf("the host-mode rules were not in place while the proxy was down")
	}
	agent.WaitTaskState(t, alloc.ID, proxyTask, harness.TaskStateRunning)
	if node := agent.Node(t); node.Status != api.NodeStatusReady {
		t.Errorf("node %s after the sidecar restarted", node.Status)
	}
	t.Logf("node ready at each of %d looks while the proxy was down; events:\n%s",
		checks, strings.Join(agent.TaskEvents(t, alloc.ID, proxyTask), "\n"))
	agent.StopJob(t, id)
}

// watchNodeUntilRestart looks at the node until the sidecar is back, failing the test unless each look answers
// quickly and sees it ready. It returns how often it looked and whether the host's rules were in place while the
// proxy was down.
func watchNodeUntilRestart(t *testing.T, agent *harness.Agent, allocID string, pilot int) (checks int, sawRulesDown bool) {
	t.Helper()
	pollUntil(t, meshTimeout, "the sidecar restarted", func() (bool, string) {
		start := time.Now()
		node, _, err := agent.Client.Nodes().Info(agent.NodeID, nil)
		took := time.Since(start)
		switch {
		case err != nil:
			t.Errorf("node status failed while Envoy was dead: %v", err)
		case node.Status != api.NodeStatusReady:
			t.Errorf("node %s while Envoy was dead", node.Status)
		case took > 2*time.Second:
			t.Errorf("node status took %s while Envoy was dead", took)
		}
		checks++
		restarted := newProxyStart(t, agent, allocID, pilot) != 0
		if !restarted && len(harness.SnapshotRules(t, "").Tagged()) > 0 {
			sawRulesDown = true
		}
		return restarted, "no new \"Proxy started\" event"
	})
	return checks, sawRulesDown
}
