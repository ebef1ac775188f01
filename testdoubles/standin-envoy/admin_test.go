package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func testProxy(t *testing.T) *proxy {
	t.Helper()
	b, err := loadBootstrap("testdata/bootstrap-default.json", "")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{boot: b, stats: newStatStore(), events: &eventLog{stderr: io.Discard}, started: time.Now(),
		quit: make(chan struct{}, 1), ready: make(chan struct{}), bound: map[string]boundListener{},
		beh: behaviour{mode: modeNormal, controlPlane: controlPlaneNone}}
	p.setState(statePreInitializing)
	return p
}

func do(t *testing.T, h http.Handler, method, target string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec.Code, rec.Body.String()
}

func TestAdminReadyAndServerInfo(t *testing.T) {
	p := testProxy(t)
	h := p.adminHandler()
	if code, body := do(t, h, "GET", "/ready"); code != 503 || body != "PRE_INITIALIZING\n" {
		t.Errorf("/ready before = %d %q", code, body)
	}
	if err := p.markLive(); err != nil {
		t.Fatal(err)
	}
	if code, body := do(t, h, "GET", "/ready"); code != 200 || body != "LIVE\n" {
		t.Errorf("/ready after = %d %q", code, body)
	}
	code, body := do(t, h, "GET", "/server_info")
	var info struct {
		State, Version string
		Node           struct{ ID string }
	}
	if err := json.Unmarshal([]byte(body), &info); err != nil || code != 200 {
		t.Fatalf("/server_info = %d %q: %v", code, body, err)
	}
	if info.State != "LIVE" || !strings.Contains(info.Version, "/1.36.0/") || !strings.HasPrefix(info.Node.ID, "sidecar~") {
		t.Errorf("/server_info = %+v", info)
	}
}

func TestAdminStatsQuery(t *testing.T) {
	p := testProxy(t)
	if err := p.markLive(); err != nil {
		t.Fatal(err)
	}
	code, body := do(t, p.adminHandler(), "GET", "/stats?usedonly&filter="+readyStatsRegex)
	if code != 200 || body != "listener_manager.workers_started: 1\nserver.state: 0\n" {
		t.Errorf("/stats = %d %q", code, body)
	}
	if code, _ := do(t, p.adminHandler(), "GET", "/stats?filter=("); code != 400 {
		t.Errorf("bad regex: %d, want 400", code)
	}
}

func TestAdminConfigDumpAndMethods(t *testing.T) {
	p := testProxy(t)
	h := p.adminHandler()
	for query, want := range map[string][]string{
		"":             {"Bootstrap", "Clusters", "Listeners", "Routes", "Secrets"},
		"?include_eds": {"Bootstrap", "Clusters", "Endpoints", "Listeners", "Routes", "Secrets"},
	} {
		code, body := do(t, h, "GET", "/config_dump"+query)
		var dump struct {
			Configs []map[string]any `json:"configs"`
		}
		if err := json.Unmarshal([]byte(body), &dump); err != nil || code != 200 || len(dump.Configs) != len(want) {
			t.Fatalf("/config_dump%s = %d, %d configs: %v", query, code, len(dump.Configs), err)
		}
		for i, w := range want {
			if got := dump.Configs[i]["@type"]; got != "type.googleapis.com/envoy.admin.v3."+w+"ConfigDump" {
				t.Errorf("/config_dump%s configs[%d] = %v, want %sConfigDump", query, i, got, w)
			}
		}
		if dump.Configs[0]["bootstrap"] == nil {
			t.Errorf("/config_dump%s has no bootstrap", query)
		}
		// Laid out as Envoy prints it, whatever spacing protojson chose this run: readers match this text.
		if !strings.Contains(body, `"@type": "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump"`) || strings.Contains(body, ":  ") {
			t.Errorf("/config_dump%s is not laid out as Envoy's: %.200s", query, body)
		}
	}
	if code, _ := do(t, h, "GET", "/drain_listeners"); code != http.StatusMethodNotAllowed {
		t.Errorf("GET /drain_listeners = %d, want 405", code)
	}
	if code, _ := do(t, h, "POST", "/drain_listeners?inboundonly&graceful&skip_exit"); code != 200 {
		t.Errorf("POST /drain_listeners = %d", code)
	}
	if code, _ := do(t, h, "GET", "/nope"); code != 404 {
		t.Errorf("/nope = %d, want 404", code)
	}
	if code, _ := do(t, h, "POST", "/quitquitquit"); code != 200 {
		t.Errorf("POST /quitquitquit = %d", code)
	}
	select {
	case <-p.quit:
	default:
		t.Error("quitquitquit did not ask the proxy to exit")
	}
}

func TestRouteHandler(t *testing.T) {
	agent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "agent saw "+r.URL.Path)
	}))
	defer agent.Close()
	up := netip.MustParseAddrPort(strings.TrimPrefix(agent.URL, "http://"))
	h := routeHandler([]route{{prefix: "/healthz/ready", cluster: "agent", upstream: up}, {prefix: "/gone", cluster: "missing"}})
	if code, body := do(t, h, "GET", "/healthz/ready"); code != 200 || body != "agent saw /healthz/ready" {
		t.Errorf("/healthz/ready = %d %q", code, body)
	}
	if code, _ := do(t, h, "GET", "/gone"); code != 503 {
		t.Errorf("route to a missing cluster = %d, want 503", code)
	}
	if code, _ := do(t, h, "GET", "/other"); code != 404 {
		t.Errorf("unrouted path = %d, want 404", code)
	}
}
