package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/istio-sidecar/istio-sidecar/internal/testenv"
)

// requireIntegration skips without root and iptables, except under ISTIO_SIDECAR_REQUIRE_INTEGRATION, where
// a missing piece fails rather than passing as a skip.
func requireIntegration(t *testing.T) {
	t.Helper()
	testenv.RequireRoot(t, "creates a network namespace and runs iptables in it")
	testenv.RequireTools(t, "ip", "iptables-restore", "iptables-save")
}

// newNetns creates a throwaway namespace isc-cli-<random> with loopback up, deleted when the test ends.
func newNetns(t *testing.T) string {
	t.Helper()
	return testenv.NewNetns(t, "isc-cli").Path
}

// TestApplyStatusCleanup drives the operator cycle in a throwaway namespace: apply, status lists the alloc,
// re-apply changes nothing, cleanup by tag without --alloc, status empty.
func TestApplyStatusCleanup(t *testing.T) {
	requireIntegration(t)
	ns := newNetns(t)
	const alloc = "c0ffee00-1d2b-4c3a-8e9f-0a1b2c3d4e5f"
	config := writeFile(t, "task.hcl", `
exclude_outbound_ports = ["5432"]
include_inbound_ports  = ["8080"]
`)
	mustRun := func(want string, args ...string) (stdout, stderr string) {
		t.Helper()
		code, stdout, stderr := runCLI(args...)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", strings.Join(args, " "), code, stderr)
		}
		if !strings.Contains(stdout, want) {
			t.Fatalf("%s: stdout %q lacks %q", strings.Join(args, " "), stdout, want)
		}
		return stdout, stderr
	}

	mustRun("rules applied (", "apply", "--config", config, "--netns", ns, "--alloc", alloc)
	if stdout, stderr := mustRun(alloc, "status", "--netns", ns); stdout != alloc+"\n" || !strings.Contains(stderr, "backend: ") {
		t.Errorf("status: stdout %q, stderr %q; want the alloc alone, and the backend", stdout, stderr)
	}
	mustRun("rules already in place (", "apply", "--config", config, "--netns", ns, "--alloc", alloc)

	// Another allocation's rules cannot be laid over ours: exit 1, an operation failure.
	if code, _, stderr := runCLI("apply", "--config", config, "--netns", ns, "--alloc", "other-alloc"); code != 1 ||
		!strings.Contains(stderr, "another allocation") {
		t.Errorf("apply over another alloc: exit %d, %s", code, stderr)
	}

	stdout, _ := mustRun(alloc+": ", "cleanup", "--netns", ns)
	if strings.HasPrefix(stdout, alloc+": 0 rules") || strings.Count(stdout, "\n") != 1 {
		t.Errorf("cleanup: %q, want one line with a rule count", stdout)
	}
	if stdout, stderr := mustRun("", "status", "--netns", ns); stdout != "" || !strings.Contains(stderr, "no interception rules in "+ns) {
		t.Errorf("status after cleanup: stdout %q, stderr %q", stdout, stderr)
	}
	if out, err := exec.Command("ip", "netns", "exec", strings.TrimPrefix(ns, "/var/run/netns/"), "iptables-save").CombinedOutput(); err != nil ||
		strings.Contains(string(out), "istio-sidecar") || strings.Contains(string(out), "ISTIO_") {
		t.Errorf("rules left after cleanup (%v):\n%s", err, out)
	}
	if _, stderr := mustRun("", "cleanup", "--netns", ns); !strings.Contains(stderr, "no interception rules") {
		t.Errorf("second cleanup: stderr %q", stderr)
	}
}
