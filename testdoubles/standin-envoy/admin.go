package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"time"
)

// serverState is Envoy's envoy.admin.v3.ServerInfo.State, as pilot-agent decodes it in
// pilot/cmd/pilot-agent/status/ready/probe.go.
type serverState int32

const (
	stateLive            serverState = 0
	stateDraining        serverState = 1
	statePreInitializing serverState = 2
	stateInitializing    serverState = 3
)

func (s serverState) String() string {
	switch s {
	case stateLive:
		return "LIVE"
	case stateDraining:
		return "DRAINING"
	case statePreInitializing:
		return "PRE_INITIALIZING"
	case stateInitializing:
		return "INITIALIZING"
	}
	return "UNKNOWN"
}

// adminHandler serves the subset of Envoy's admin API that pilot-agent, istioctl and our tests call.
// Mutating endpoints are POST-only as in Envoy.
func (p *proxy) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ready", p.handleReady)
	mux.HandleFunc("GET /server_info", p.handleServerInfo)
	mux.HandleFunc("GET /stats", p.handleStats)
	mux.HandleFunc("GET /stats/prometheus", p.handlePrometheus)
	mux.HandleFunc("GET /config_dump", p.handleConfigDump)
	mux.HandleFunc("GET /certs", p.handleCerts)
	mux.HandleFunc("GET /listeners", p.handleListeners)
	mux.HandleFunc("POST /drain_listeners", p.handleDrainListeners)
	mux.HandleFunc("POST /healthcheck/fail", p.handleHealthcheck(stateDraining))
	mux.HandleFunc("POST /healthcheck/ok", p.handleHealthcheck(stateLive))
	mux.HandleFunc("POST /quitquitquit", p.handleQuit)
	for _, path := range []string{"/drain_listeners", "/healthcheck/fail", "/healthcheck/ok", "/quitquitquit"} {
		mux.HandleFunc(path, requirePost)
	}
	mux.HandleFunc("/", p.handleHelp)
	return mux
}

// requirePost answers like Envoy's admin does to a GET on a mutating endpoint.
func requirePost(w http.ResponseWriter, r *http.Request) {
	http.Error(w, fmt.Sprintf("admin path %q mutates state, method=%s rather than POST", r.URL.Path, r.Method),
		http.StatusMethodNotAllowed)
}

func (p *proxy) handleHelp(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		// Envoy answers unknown admin paths with 404 and the command list.
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, "invalid path. ")
	}
	fmt.Fprint(w, "admin commands are (standin-envoy subset):\n  /certs\n  /config_dump\n  /drain_listeners (POST)\n"+
		"  /healthcheck/fail (POST)\n  /healthcheck/ok (POST)\n  /listeners\n  /quitquitquit (POST)\n"+
		"  /ready\n  /server_info\n  /stats\n  /stats/prometheus\n")
}

func (p *proxy) handleReady(w http.ResponseWriter, _ *http.Request) {
	st := p.serverState()
	if st != stateLive {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	fmt.Fprintln(w, st)
}

func (p *proxy) handleServerInfo(w http.ResponseWriter, _ *http.Request) {
	uptime := fmt.Sprintf("%ds", int(time.Since(p.started).Seconds()))
	info := map[string]any{
		"version":              versionString(),
		"state":                p.serverState().String(),
		"hot_restart_version":  "disabled",
		"uptime_current_epoch": uptime,
		"uptime_all_epochs":    uptime,
		"node":                 json.RawMessage(dumpJSON.Format(p.boot.proto.GetNode())), // re-encoded: protojson's spacing goes
		"command_line_options": map[string]any{
			"config_path":  p.opts.configPath,
			"config_yaml":  p.opts.configYAML,
			"log_level":    p.opts.logLevel,
			"concurrency":  p.opts.concurrency,
			"drain_time":   fmt.Sprintf("%ds", p.opts.drainTimeS),
			"mode":         p.opts.mode,
			"all_flags":    p.opts.all,
			"unknown_args": p.opts.unknown,
		},
		// Not in Envoy's ServerInfo: lets a human or a test tell the stand-in apart.
		"standin_envoy": map[string]any{"mode": p.beh.mode},
	}
	writeJSON(w, info)
}

func (p *proxy) statsQuery(r *http.Request) ([]statValue, error) {
	q := r.URL.Query()
	var filter *regexp.Regexp
	if f := q.Get("filter"); f != "" {
		var err error
		if filter, err = regexp.Compile(f); err != nil {
			return nil, fmt.Errorf("invalid regex %q: %w", f, err)
		}
	}
	return p.stats.snapshot(q.Has("usedonly"), filter), nil
}

func (p *proxy) handleStats(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("format") == "prometheus" {
		p.handlePrometheus(w, r)
		return
	}
	stats, err := p.statsQuery(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	switch r.URL.Query().Get("format") {
	case "json":
		w.Header().Set("Content-Type", "application/json")
		err = renderJSON(w, stats)
	default:
		w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
		err = renderText(w, stats)
	}
	if err != nil {
		p.events.event("admin_error", map[string]any{"path": r.URL.Path, "error": err.Error()})
	}
}

func (p *proxy) handlePrometheus(w http.ResponseWriter, r *http.Request) {
	stats, err := p.statsQuery(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=UTF-8")
	if err := renderPrometheus(w, stats); err != nil {
		p.events.event("admin_error", map[string]any{"path": r.URL.Path, "error": err.Error()})
	}
}

func (p *proxy) handleListeners(w http.ResponseWriter, _ *http.Request) {
	for _, line := range p.listenerLines() {
		fmt.Fprintln(w, line)
	}
}

// handleDrainListeners accepts pilot-agent's POST drain_listeners?inboundonly&graceful (pkg/envoy/admin.go),
// plus skip_exit, which Envoy ignores here too.
func (p *proxy) handleDrainListeners(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p.drainListeners(q.Has("inboundonly"), q.Has("graceful"))
	fmt.Fprintln(w, "OK")
}

func (p *proxy) handleHealthcheck(to serverState) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		// Only a live server moves between LIVE and DRAINING; one still initialising stays where it is.
		p.state.CompareAndSwap(int32(stateLive+stateDraining-to), int32(to))
		p.stats.gauge("server.state").set(uint64(p.serverState()))
		fmt.Fprintln(w, "OK")
	}
}

func (p *proxy) handleQuit(w http.ResponseWriter, _ *http.Request) {
	fmt.Fprintln(w, "OK")
	select {
	case p.quit <- struct{}{}:
	default:
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	_ = enc.Encode(v) // the client went away; nothing to do about it
}
