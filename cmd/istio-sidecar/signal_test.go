package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/istio-sidecar/istio-sidecar/driver/rules"
)

// SIGTERM to a TPROXY `istio-sidecar apply` at the worst moment (iptables-restore has committed the mangle
// table and not yet nat, 10,000 rules later) leaves nothing: the apply reverts what it committed before it
// exits non-zero.
func TestApply_SIGTERMBetweenTablesLeavesNothing(t *testing.T) {
	requireIntegration(t)
	ns := newNetns(t)
	name := strings.TrimPrefix(ns, "/var/run/netns/")
	ranges := make([]string, 10000)
	for i := range ranges {
		ranges[i] = fmt.Sprintf(`"10.%d.%d.0/24"`, i/256, i%256)
	}
	config := writeFile(t, "task.hcl", "interception_mode = \"TPROXY\"\nexclude_outbound_ip_ranges = ["+strings.Join(ranges, ",")+"]\n")
	const alloc = "5161e000-0000-4000-8000-000000000000"
	caught := 0
	for try := 0; try < 20 && caught < 3; try++ {
		if sigtermMidRestore(t, name, ns, config, alloc) {
			caught++
		}
		if save := nsSave(t, name); strings.Contains(save, "ISTIO_") || strings.Contains(save, rules.TagPrefix) {
			t.Fatalf("try %d: the interrupted apply left:\n%s", try, save)
		}
	}
	if caught == 0 {
		t.Fatal("never signalled between the mangle and nat commits")
	}
}

// sigtermMidRestore runs apply and sends it SIGTERM once our mangle rules are in and our nat rules are not;
// it reports whether it caught that moment (otherwise the apply finished, and is cleaned up).
func sigtermMidRestore(t *testing.T, name, ns, config, alloc string) bool {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "apply", "--config", config, "--netns", ns, "--alloc", alloc, "--state-dir", t.TempDir())
	cmd.Env = append(os.Environ(), cliEnv+"=1")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tag := rules.TagPrefix + alloc
	for {
		select {
		case err := <-done:
			if err == nil {
				if code, out := cli(t, "cleanup", "--netns", ns, "--state-dir", t.TempDir()); code != 0 {
					t.Fatalf("cleanup: %s", out)
				}
			}
			return false
		default:
		}
		mangle := tableSave(t, name, "mangle")
		if strings.Contains(mangle, tag) && !strings.Contains(tableSave(t, name, "nat"), tag) {
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if err := <-done; err == nil {
				t.Fatalf("apply signalled mid-restore exited 0:\n%s", out.String())
			}
			return true
		}
	}
}

func tableSave(t *testing.T, name, table string) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", name, "iptables-nft-save", "-t", table).CombinedOutput()
	if err != nil {
		t.Fatalf("iptables-nft-save -t %s: %v: %s", table, err, out)
	}
	return string(out)
}
