package main

import (
	"bytes"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestTProxyNeedsNetAdmin: in TPROXY mode the inbound listener is made transparent, which needs CAP_NET_ADMIN
// (or CAP_NET_RAW, which the kernel also accepts for IP_TRANSPARENT). Without them (dropped from the bounding
// set, as for a proxy user the driver did not grant CAP_NET_ADMIN) the stand-in
// exits 1 naming the option and the capability; in REDIRECT mode the same process starts fine.
func TestTProxyNeedsNetAdmin(t *testing.T) {
	requireRoot(t, "ip", "go", "setpriv")
	standin := buildStandin(t)
	ns := newNetns(t)
	client := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DialContext: dialContextIn(ns), DisableKeepAlives: true}}
	run := func(t *testing.T, mode string, dropNetAdmin bool) (chan error, *lockedBuffer) {
		argv := []string{"netns", "exec", ns}
		if dropNetAdmin {
			argv = append(argv, "setpriv", "--bounding-set=-net_admin,-net_raw", "--inh-caps=-net_admin,-net_raw")
		}
		argv = append(argv, standin, "-c", "testdata/bootstrap-default.json", "-l", "warning")
		cmd := exec.Command("ip", argv...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), envInterceptionMode + "=" + mode}
		stderr := &lockedBuffer{}
		cmd.Stderr = stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			err := <-done
			done <- err
			if t.Failed() {
				t.Logf("stand-in stderr:\n%s", stderr.String())
			}
		})
		return done, stderr
	}

	t.Run("TPROXY without CAP_NET_ADMIN exits 1 with the reason", func(t *testing.T) {
		done, stderr := run(t, "TPROXY", true)
		select {
		case err := <-done:
			done <- err
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("exit %v, want 1", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("stand-in did not exit")
		}
		lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
		last := lines[len(lines)-1]
		for _, want := range []string{`"fatal"`, "inbound listener", "IP_TRANSPARENT", "CAP_NET_ADMIN", "operation not permitted"} {
			if !strings.Contains(last, want) {
				t.Errorf("last line %q lacks %q", last, want)
			}
		}
	})
	for _, c := range []struct {
		mode string
		drop bool
	}{{"REDIRECT", true}, {"TPROXY", false}} {
		t.Run(c.mode+" becomes ready", func(t *testing.T) {
			_, stderr := run(t, c.mode, c.drop)
			waitFor(t, 5*time.Second, "/ready LIVE", func() error { return get200(client, "http://127.0.0.1:15000/ready", "LIVE") })
			if want := `"tproxy":` + map[string]string{"REDIRECT": "false", "TPROXY": "true"}[c.mode]; !strings.Contains(stderr.String(), want) {
				t.Errorf("started event lacks %s:\n%s", want, stderr)
			}
		})
	}
}

// lockedBuffer is the stand-in's stderr, written by exec's copier goroutine while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
