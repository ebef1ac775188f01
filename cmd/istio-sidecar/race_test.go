package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

// cliEnv makes the test binary run as the CLI (TestMain), so that the race below is between real processes.
const cliEnv = "ISTIO_SIDECAR_TEST_RUN_CLI"

func TestMain(m *testing.M) {
	if os.Getenv(cliEnv) == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// cli runs the CLI as its own process.
func cli(t *testing.T, args ...string) (code int, out string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, args...)
	cmd.Env = append(os.Environ(), cliEnv+"=1")
	b, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(b)
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, string(b)
}

// Two `istio-sidecar apply` processes racing into one namespace: exactly one wins, the namespace holds one
// owner's ruleset with each built-in chain's jump once, and one cleanup removes everything.
func TestApply_ConcurrentProcessesOneOwner(t *testing.T) {
	requireIntegration(t)
	ns := newNetns(t)
	name := strings.TrimPrefix(ns, "/var/run/netns/")
	config := writeFile(t, "task.hcl", `exclude_outbound_ports = ["5432"]`)
	stateDir := t.TempDir()
	for try := range 10 {
		codes := make([]int, 2)
		outs := make([]string, 2)
		var wg sync.WaitGroup
		for i, alloc := range []string{"a0000000-race", "b0000000-race"} {
			wg.Go(func() {
				codes[i], outs[i] = cli(t, "apply", "--config", config, "--netns", ns, "--alloc", alloc, "--state-dir", stateDir)
			})
		}
		wg.Wait()
		if (codes[0] == 0) == (codes[1] == 0) {
			t.Fatalf("try %d: exit codes %v, want exactly one success:\n%s\n%s", try, codes, outs[0], outs[1])
		}
		save := nsSave(t, name)
		owners := map[string]bool{}
		for _, l := range strings.Split(save, "\n") {
			if _, id, ok := strings.Cut(l, "istio-sidecar:alloc="); ok {
				owners[strings.Fields(strings.Trim(id, `"`))[0]] = true
			}
		}
		if len(owners) != 1 || strings.Count(save, "-A PREROUTING -p tcp -m comment") != 1 || strings.Count(save, "-A OUTPUT -m comment") != 1 {
			t.Fatalf("try %d: owners %v, or a built-in chain's jump twice:\n%s", try, owners, save)
		}
		if code, out := cli(t, "cleanup", "--netns", ns, "--state-dir", stateDir); code != 0 {
			t.Fatalf("try %d: cleanup: exit %d: %s", try, code, out)
		}
		if save := nsSave(t, name); strings.Contains(save, "istio-sidecar") || strings.Contains(save, "ISTIO_") {
			t.Fatalf("try %d: one cleanup left:\n%s", try, save)
		}
	}
}

func nsSave(t *testing.T, name string) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", name, "iptables-save").CombinedOutput()
	if err != nil {
		t.Fatalf("iptables-save: %v: %s", err, out)
	}
	return fmt.Sprint(string(out))
}

// A namespace that two writers left with two owners is cleaned in one run. The shape is one unserialised
// applies could leave (the second one's rules appended to the first one's chains rather than replacing
// them): each owner's jumps in PREROUTING and OUTPUT, mixed chains, and one chain of the first owner's alone
// that the second owner's rules jump to, which cannot be deleted with the first owner's rules alone
// (CHAIN_DEL: Device or resource busy).
func TestCleanup_ConvergesFromTwoOwners(t *testing.T) {
	requireIntegration(t)
	ns := newNetns(t)
	name := strings.TrimPrefix(ns, "/var/run/netns/")
	config := writeFile(t, "task.hcl", `exclude_outbound_ports = ["5432"]`)
	for i, alloc := range []string{"a0000000-twice", "b0000000-twice"} {
		code, stdout, stderr := runCLI("rules", "--config", config, "--netns", ns, "--alloc", alloc)
		if code != 0 {
			t.Fatalf("rules: %s", stderr)
		}
		var payload []string
		for _, l := range strings.Split(strings.TrimPrefix(stdout, "# IPv4\n"), "\n") {
			if i == 1 && (strings.HasPrefix(l, ":ISTIO_") || strings.HasPrefix(l, "-A ISTIO_IN_REDIRECT ")) {
				continue // the second writer appends to the first one's chains, and leaves ISTIO_IN_REDIRECT to it
			}
			payload = append(payload, l)
		}
		cmd := exec.Command("ip", "netns", "exec", name, "iptables-restore", "--noflush")
		cmd.Stdin = strings.NewReader(strings.Join(payload, "\n"))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("restoring %s's payload behind the driver's back: %v: %s", alloc, err, out)
		}
	}
	if save := nsSave(t, name); !strings.Contains(save, "alloc=a0000000-twice") || !strings.Contains(save, "alloc=b0000000-twice") {
		t.Fatalf("the two owners' state was not made:\n%s", save)
	}
	code, out := cli(t, "cleanup", "--netns", ns, "--state-dir", t.TempDir())
	if code != 0 || !strings.Contains(out, "a0000000-twice: ") || !strings.Contains(out, "b0000000-twice: ") {
		t.Fatalf("cleanup: exit %d: %s", code, out)
	}
	if save := nsSave(t, name); strings.Contains(save, "istio-sidecar") || strings.Contains(save, "ISTIO_") {
		t.Fatalf("one cleanup left:\n%s", save)
	}
}
