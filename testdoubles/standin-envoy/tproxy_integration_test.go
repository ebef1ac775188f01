package main

import (
	"net/http"
	"strings"
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
	dropNetAdmin := []string{"setpriv", "--bounding-set=-net_admin,-net_raw", "--inh-caps=-net_admin,-net_raw"}
	run := func(t *testing.T, mode string, wrap []string) *runningStandin {
		return startStandin(t, ns, standin, wrap, envInterceptionMode+"="+mode)
	}

	t.Run("TPROXY without CAP_NET_ADMIN exits 1 with the reason", func(t *testing.T) {
		s := run(t, "TPROXY", dropNetAdmin)
		if code := s.exitCode(t); code != 1 {
			t.Fatalf("exit %d, want 1", code)
		}
		lines := strings.Split(strings.TrimSpace(s.stderr.String()), "\n")
		last := lines[len(lines)-1]
		for _, want := range []string{`"fatal"`, "inbound listener", "IP_TRANSPARENT", "CAP_NET_ADMIN", "operation not permitted"} {
			if !strings.Contains(last, want) {
				t.Errorf("last line %q lacks %q", last, want)
			}
		}
	})
	for _, c := range []struct {
		mode string
		wrap []string
	}{{"REDIRECT", dropNetAdmin}, {"TPROXY", nil}} {
		t.Run(c.mode+" becomes ready", func(t *testing.T) {
			stderr := run(t, c.mode, c.wrap).stderr
			waitFor(t, 5*time.Second, "/ready LIVE", func() error { return get200(client, "http://127.0.0.1:15000/ready", "LIVE") })
			if want := `"tproxy":` + map[string]string{"REDIRECT": "false", "TPROXY": "true"}[c.mode]; !strings.Contains(stderr.String(), want) {
				t.Errorf("started event lacks %s:\n%s", want, stderr)
			}
		})
	}
}
