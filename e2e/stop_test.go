//go:build e2e

package e2e

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/istio-sidecar/istio-sidecar/e2e/harness"
)

// TestStop_LeavesNothing: after `nomad job stop` of a bridge-mode meshed job, the host's netfilter rules are as
// before the job, the allocation's network namespace is gone, no pilot-agent or Envoy runs and no host lock
// exists. Sequential: it compares the host's rules, which parallel bridge-mode scenarios change.
func TestStop_LeavesNothing(t *testing.T) {
	agent := meshAgent(t)
	before := harness.SnapshotRules(t, "")
	up := listenOnBridge(t)
	alloc := runBridgeJob(t, agent, "stop", bridgeVars(t, up.Addr))
	waitConnLog(t, connLogPath(agent, alloc.ID), up.Addr, 0)
	pilot, envoy := proxyPIDs(t, agent, alloc.ID)
	netns := harness.NetnsPath(alloc.ID)
	if tagged := harness.SnapshotRules(t, netns).Tagged(); len(tagged) == 0 {
		t.Fatalf("the running allocation's namespace holds no interception rules")
	}

	agent.StopJob(t, "stop")

	pollUntil(t, 30*time.Second, "the allocation's network namespace removed", func() (bool, string) {
		_, err := os.Lstat(netns)
		return errors.Is(err, fs.ErrNotExist), fmt.Sprintf("stat %s: %v", netns, err)
	})
	pollUntil(t, 30*time.Second, "pilot-agent and Envoy gone", func() (bool, string) {
		left := append(agent.ProcsMatching(t, "pilot-agent"), agent.ProcsMatching(t, "standin-envoy")...)
		for _, pid := range []int{pilot, envoy} {
			if harness.Alive(pid) {
				left = append(left, pid)
			}
		}
		return len(left) == 0, fmt.Sprintf("still running: %v", left)
	})
	if _, err := os.Stat(hostLockPath); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s exists after the stop (stat: %v)", hostLockPath, err)
	}
	after := harness.SnapshotRules(t, "")
	if tagged := after.Tagged(); len(tagged) > 0 {
		t.Errorf("interception rules in the host namespace after the stop:\n%s", strings.Join(tagged, "\n"))
	}
	if diff := before.WithoutNomadNetworking().Diff(after.WithoutNomadNetworking()); diff != nil {
		t.Errorf("the host's netfilter rules differ from before the job:\n%s", strings.Join(diff, "\n"))
	}
	if left := after.Mentioning(alloc.ID); len(left) > 0 {
		t.Errorf("host rules of the stopped allocation remain:\n%s", strings.Join(left, "\n"))
	}
	stopped := agent.TaskEvents(t, alloc.ID, proxyTask)
	if !containsSubstring(stopped, "interception rules removed") {
		t.Errorf("no \"interception rules removed\" event on the proxy task:\n%s", strings.Join(stopped, "\n"))
	}
}

func containsSubstring(lines []string, sub string) bool {
	for _, l := range lines {
		if strings.Contains(l, sub) {
			return true
		}
	}
	return false
}
