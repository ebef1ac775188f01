package main

import (
	"github.com/istio-sidecar/istio-sidecar/testdoubles/standin-envoy/xds"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// readyStats mirrors how pilot-agent reads Envoy (pilot/cmd/pilot-agent/status/util/stats.go): it asks for
// /stats?usedonly&filter=<regex>, takes the first line that starts with each stat name, splits it on ":"
// into exactly two parts and parses the second as uint64.
func readyStats(t *testing.T, body string, names ...string) map[string]uint64 {
	t.Helper()
	got := map[string]uint64{}
	for _, line := range strings.SplitAfter(body, "\n") {
		for _, n := range names {
			if _, seen := got[n]; seen || !strings.HasPrefix(line, n) {
				continue
			}
			parts := strings.Split(line, ":")
			if len(parts) != 2 {
				t.Fatalf("line %q: pilot-agent wants exactly one ':'", line)
			}
			v, err := strconv.ParseUint(strings.TrimSpace(parts[1]), 10, 64)
			if err != nil {
				t.Fatalf("line %q: %v", line, err)
			}
			got[n] = v
		}
	}
	return got
}

// The regexes pilot-agent sends, copied from its source.
const (
	readyStatsRegex  = `^(server\.state|listener_manager\.workers_started)`
	updateStatsRegex = `^(cluster_manager\.cds|listener_manager\.lds)\.(update_success|update_rejected)$`
)

func renderedText(t *testing.T, s *statStore, usedOnly bool, filter string) string {
	t.Helper()
	var re *regexp.Regexp
	if filter != "" {
		re = regexp.MustCompile(filter)
	}
	var b strings.Builder
	if err := renderText(&b, s.snapshot(usedOnly, re)); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestStatsAsPilotAgentReadsThem(t *testing.T) {
	p := &proxy{stats: newStatStore(), events: &eventLog{stderr: &strings.Builder{}}, boot: &bootstrap{}, ready: make(chan struct{})}
	p.setState(statePreInitializing)
	p.stats.gauge("listener_manager.workers_started").set(0)
	p.stats.counter("cluster_manager.cds.update_rejected") // registered, never written

	before := renderedText(t, p.stats, true, updateStatsRegex)
	if before != "" {
		t.Errorf("before ready, update stats = %q, want none (usedonly hides unwritten counters)", before)
	}
	if got := readyStats(t, renderedText(t, p.stats, true, readyStatsRegex), "server.state"); got["server.state"] != 2 {
		t.Errorf("server.state before ready = %d, want 2 (PRE_INITIALIZING)", got["server.state"])
	}

	p.countUpdate(xds.ClusterType, "1", nil)
	p.countUpdate(xds.ListenerType, "1", nil)
	if err := p.markLive(); err != nil {
		t.Fatal(err)
	}
	got := readyStats(t, renderedText(t, p.stats, true, readyStatsRegex), "server.state", "listener_manager.workers_started")
	if got["server.state"] != 0 || got["listener_manager.workers_started"] != 1 {
		t.Errorf("ready stats = %v", got)
	}
	up := renderedText(t, p.stats, true, updateStatsRegex)
	got = readyStats(t, up, "cluster_manager.cds.update_success", "listener_manager.lds.update_success")
	if got["cluster_manager.cds.update_success"] == 0 || got["listener_manager.lds.update_success"] == 0 {
		t.Errorf("update stats = %q", up)
	}
	if strings.Contains(up, "server.") {
		t.Errorf("filter let through other stats: %q", up)
	}
	if all := renderedText(t, p.stats, false, ""); !strings.Contains(all, "cluster_manager.cds.update_rejected: 0\n") {
		t.Errorf("without usedonly the unwritten counter should show: %q", all)
	}
}

func TestRenderPrometheus(t *testing.T) {
	s := newStatStore()
	s.gauge("server.state").set(0)
	s.counter("listener.0.0.0.0_15001.downstream_cx_total").add(3)
	s.counter("listener.[::]_15001.downstream_cx_total").add(1)
	s.gauge("listener.0.0.0.0_15001.downstream_cx_active").set(1)
	var b strings.Builder
	if err := renderPrometheus(&b, s.snapshot(false, nil)); err != nil {
		t.Fatal(err)
	}
	want := `# TYPE envoy_listener_downstream_cx_active gauge
envoy_listener_downstream_cx_active{envoy_listener_address="0.0.0.0_15001"} 1
# TYPE envoy_listener_downstream_cx_total counter
envoy_listener_downstream_cx_total{envoy_listener_address="0.0.0.0_15001"} 3
envoy_listener_downstream_cx_total{envoy_listener_address="[::]_15001"} 1
# TYPE envoy_server_state gauge
envoy_server_state{} 0
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}
