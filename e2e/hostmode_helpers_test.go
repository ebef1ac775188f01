//go:build e2e

package e2e

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/istio-sidecar/istio-sidecar/e2e/harness"
)

// Host mode installs rules in the host's own namespace. The scenarios that use it never call t.Parallel: Go runs
// every sequential top-level test before releasing the parallel ones, so no two host-mode scenarios (which share
// the host namespace and the driver's host lock) ever overlap, and no bridge-mode scenario adds CNI rules to the
// host while one compares the host's rules.

const (
	// hostLockPath is the driver's host-mode lock (plugin state_dir, default /run/istio-sidecar).
	hostLockPath = "/run/istio-sidecar/host-mode.lock"
	// unusedRange is captured outbound by host-mode scenarios: nothing on the host talks to it, so the rules
	// capture (almost) nothing of the host's own traffic while they exist.
	unusedRange = "10.214.0.0/24"
)

// guardHost snapshots the host namespace's netfilter state and, at cleanup (after the agent has stopped, since it
// is registered before the agent starts), fails the test unless the state is exactly the same and no host lock is
// left; whatever the driver left is then removed, so a failed scenario never leaves the host captured. Call it
// before meshAgent.
func guardHost(t *testing.T) {
	t.Helper()
	harness.RequireBridgeNetworking(t) // root and iptables; host mode needs no CNI, but the same tools
	if owner, err := os.ReadFile(hostLockPath); err == nil {
		t.Fatalf("%s is held by allocation %s: another host-mode meshed allocation runs on this host (a demo?); "+
			"stop it before running the host-mode scenarios", hostLockPath, strings.TrimSpace(string(owner)))
	}
	before := harness.SnapshotRules(t, "")
	if tagged := before.Tagged(); len(tagged) > 0 {
		t.Fatalf("the host namespace already holds interception rules before the test:\n%s", strings.Join(tagged, "\n"))
	}
	loBefore := loAddrs(t)
	t.Cleanup(func() {
		// Where the host has IPv6 the driver adds Istio's ::6/128 to lo, and must take it away again.
		if loAfter := loAddrs(t); loAfter != loBefore {
			t.Errorf("the host's loopback addresses differ from before the test:\n--- before\n%s\n--- after\n%s", loBefore, loAfter)
			if !strings.Contains(loBefore, " ::6/128 ") && strings.Contains(loAfter, " ::6/128 ") {
				if out, err := exec.Command("ip", "-6", "addr", "del", "::6/128", "dev", "lo").CombinedOutput(); err != nil {
					t.Errorf("removing ::6/128 from lo: %v: %s", err, out)
				}
			}
		}
		after := harness.SnapshotRules(t, "")
		// Other agents on this host (parallel tests, a demo) add and remove their bridge networking rules.
		if diff := before.WithoutNomadNetworking().Diff(after.WithoutNomadNetworking()); diff != nil {
			t.Errorf("the host's netfilter rules differ from before the test:\n%s", strings.Join(diff, "\n"))
		}
		if len(after.Tagged()) > 0 {
			n, err := harness.RemoveTaggedRules("")
			if err != nil {
				t.Errorf("removing the interception rules left in the host namespace: %v", err)
			} else {
				t.Logf("removed %d interception rules left in the host namespace", n)
			}
		}
		if owner, err := os.ReadFile(hostLockPath); err == nil {
			t.Errorf("%s left behind (owner %s); removing it", hostLockPath, strings.TrimSpace(string(owner)))
			if err := os.Remove(hostLockPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("removing %s: %v", hostLockPath, err)
			}
		}
	})
}

// loAddrs lists the host's loopback addresses, one per line, with their flags and without lifetimes.
func loAddrs(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("ip", "-o", "addr", "show", "dev", "lo").Output()
	if err != nil {
		t.Fatalf("ip addr show dev lo: %v", err)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		l, _, _ = strings.Cut(l, "\\")
		lines = append(lines, strings.Join(strings.Fields(l), " ")+" ")
	}
	return strings.Join(lines, "\n")
}

// hostVars are the host example's variables for a scenario: a free port for the app, captured inbound, and an
// outbound range nothing uses; the client calls the server over loopback, which is never captured.
func hostVars(t *testing.T) harness.Vars {
	t.Helper()
	port := freeTCPPort(t)
	return harness.Vars{
		"testapp_path":               testappBin(t),
		"app_port":                   port,
		"call_target":                "127.0.0.1:" + strconv.Itoa(port),
		"include_outbound_ip_ranges": []string{unusedRange},
		"drain_duration":             "1s",
		"proxy_restart_delay":        "1s",
	}
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
