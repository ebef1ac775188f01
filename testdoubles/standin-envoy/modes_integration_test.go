package main

import (
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestModes runs the stand-in alone, without pilot-agent, inside a namespace of its own (its ports would
// clash with anything else on the host), once per STANDIN_ENVOY_MODE.
func TestModes(t *testing.T) {
	requireRoot(t, "ip", "go")
	standin := buildStandin(t)
	ns := newNetns(t)
	client := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DialContext: dialContextIn(ns), DisableKeepAlives: true}}
	start := func(t *testing.T, env ...string) *runningStandin { return startStandin(t, ns, standin, nil, env...) }
	waitLive := func(t *testing.T) {
		waitFor(t, 5*time.Second, "/ready LIVE", func() error { return get200(client, "http://127.0.0.1:15000/ready", "LIVE") })
	}

	t.Run("normal exits 0 on SIGTERM", func(t *testing.T) {
		s := start(t)
		waitLive(t)
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		if code := s.exitCode(t); code != 0 {
			t.Errorf("exit %d, want 0", code)
		}
	})

	t.Run("crash exits 1 after becoming ready", func(t *testing.T) {
		s := start(t, envMode+"=crash", envCrashAfter+"=300ms")
		waitLive(t)
		if code := s.exitCode(t); code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
	})

	t.Run("never-ready serves admin but stays PRE_INITIALIZING", func(t *testing.T) {
		start(t, envMode+"=never-ready")
		testNeverReady(t, client, ns)
	})

	t.Run("ignore-sigterm dies only to SIGKILL", func(t *testing.T) {
		s := start(t, envMode+"=ignore-sigterm")
		waitLive(t)
		testIgnoresSIGTERM(t, client, s)
	})
}

func testNeverReady(t *testing.T, client *http.Client, ns string) {
	waitFor(t, 5*time.Second, "admin up", func() error {
		return get200(client, "http://127.0.0.1:15000/stats?usedonly", "server.state: 2\n")
	})
	resp, err := client.Get("http://127.0.0.1:15000/ready")
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/ready = %v, %v; want 503", resp, err)
	} else {
		resp.Body.Close()
	}
	if err := get200(client, "http://127.0.0.1:15000/stats?usedonly", "update_success"); err == nil {
		t.Error("LDS/CDS update_success reported although never ready")
	}
	if c, err := dialIn(ns, "127.0.0.1:15021"); err == nil {
		c.Close()
		t.Error("health listener open although Envoy would not have started its listeners")
	}
}

func testIgnoresSIGTERM(t *testing.T, client *http.Client, s *runningStandin) {
	// `ip netns exec` execs the stand-in in place, so cmd.Process is the stand-in.
	pid := s.cmd.Process.Pid
	if !ignores(t, pid, syscall.SIGTERM) || !ignores(t, pid, syscall.SIGINT) {
		t.Fatal("SIGTERM/SIGINT not ignored according to /proc/<pid>/status SigIgn")
	}
	// The kernel drops an ignored signal when it is sent, so the process answering afterwards is proof.
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	if err := get200(client, "http://127.0.0.1:15000/ready", "LIVE"); err != nil {
		t.Fatalf("after SIGTERM: %v", err)
	}
	_ = s.cmd.Process.Kill()
	if code := s.exitCode(t); code != -1 {
		t.Errorf("exit code %d, want -1 (killed by a signal)", code)
	}
}

// ignores reads the SigIgn mask of a process.
func ignores(t *testing.T, pid int, sig syscall.Signal) bool {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if mask, ok := strings.CutPrefix(line, "SigIgn:\t"); ok {
			m, err := strconv.ParseUint(mask, 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return m&(1<<(uint(sig)-1)) != 0
		}
	}
	t.Fatal("no SigIgn line")
	return false
}
