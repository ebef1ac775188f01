// Command standin-envoy stands in for Envoy under Istio's real pilot-agent in tests, on machines where
// Envoy cannot be installed. pilot-agent starts it from ProxyConfig.binaryPath with Envoy's flags and the
// bootstrap it generated; the stand-in then serves what pilot-agent and the driver look at: the admin API
// (readiness stats, drain, quit, config_dump), the bootstrap's static health and Prometheus listeners, and
// the 15001/15006 capture listeners, which forward to the original destination and log each connection.
//
// It is a test tool and never a default of the plugin. See modes.go for the environment knobs.
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// envoyVersion is the release the stand-in claims to be. The all-zero build SHA in versionString marks it
// as the stand-in to anyone who reads `--version` or /server_info.
const (
	envoyVersion = "1.36.0"
	standinSHA   = "0000000000000000000000000000000000000000"
)

func versionString() string {
	v := os.Getenv(envVersion)
	if v == "" {
		v = envoyVersion
	}
	return standinSHA + "/" + v + "/Clean/RELEASE/BoringSSL"
}

// proxy is the running stand-in.
type proxy struct {
	opts        options
	beh         behaviour
	boot        *bootstrap
	stats       *statStore
	events      *eventLog
	transparent []transparentListener
	tproxy      bool // ISTIO_META_INTERCEPTION_MODE=TPROXY: the inbound listener is transparent
	state       atomic.Int32
	started     time.Time
	quit        chan struct{}

	mu      sync.Mutex
	closers []drainable
}

// drainable is a listening socket that drain_listeners may close.
type drainable struct {
	inbound bool
	close   func()
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	// Decided before anything else so that a SIGTERM arriving during start-up is already ignored.
	beh, err := behaviourFromEnv(os.Getenv)
	if err != nil {
		fmt.Fprintln(stderr, "standin-envoy:", err)
		return 1
	}
	sigs := make(chan os.Signal, 1)
	if beh.mode == modeIgnoreSigterm {
		signal.Ignore(syscall.SIGTERM, syscall.SIGINT)
	} else {
		signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	}

	opts, err := parseFlags(args)
	if err != nil {
		fmt.Fprintln(stderr, "standin-envoy:", err)
		return 1
	}
	switch {
	case opts.version:
		// TCLAP's StdOutput::version, which Envoy uses, frames the line with blank lines.
		fmt.Fprintf(stdout, "\nenvoy  version: %s\n\n", versionString())
		return 0
	case opts.help:
		fmt.Fprintln(stdout, "standin-envoy: accepts Envoy's flags; acts on -c, --config-yaml, -l, --concurrency, --drain-time-s, --mode, --version")
		return 0
	case opts.configPath == "" && opts.configYAML == "":
		fmt.Fprintln(stderr, "standin-envoy: at least one of --config-path or --config-yaml must be non-empty")
		return 1
	}
	boot, err := loadBootstrap(opts.configPath, opts.configYAML)
	if err != nil {
		fmt.Fprintln(stderr, "standin-envoy:", err)
		return 1
	}
	if opts.mode == "validate" {
		fmt.Fprintf(stdout, "configuration '%s' OK\n", opts.configPath)
		return 0
	}
	events, err := newEventLog(stderr, os.Getenv(envConnectionLog))
	if err != nil {
		fmt.Fprintln(stderr, "standin-envoy:", err)
		return 1
	}
	tproxy, err := interceptionFromEnv(os.Getenv)
	if err != nil {
		fmt.Fprintln(stderr, "standin-envoy:", err)
		return 1
	}
	p := &proxy{opts: opts, beh: beh, boot: boot, stats: newStatStore(), events: events, tproxy: tproxy,
		started: time.Now(), quit: make(chan struct{}, 1)}
	return p.serve(sigs)
}

func (p *proxy) serve(sigs <-chan os.Signal) int {
	if p.beh.mode != modeNeverReady {
		// Fixed before the admin API starts, which reports them.
		p.transparent = transparentListeners
	}
	p.setState(statePreInitializing)
	p.stats.gauge("listener_manager.workers_started").set(0)
	admin, err := p.startAdmin()
	if err != nil {
		p.events.event("fatal", map[string]any{"error": err.Error()})
		return 1
	}
	p.events.event("started", map[string]any{"mode": p.beh.mode, "tproxy": p.tproxy, "admin": p.boot.admin.String(),
		"version": versionString(), "unknown_args": p.opts.unknown, "skipped_listeners": p.boot.skipped})

	var crash <-chan time.Time
	if p.beh.mode != modeNeverReady {
		// Envoy starts its listeners only once initialisation is done, so never-ready keeps them closed too.
		if err := p.startListeners(); err != nil {
			p.events.event("fatal", map[string]any{"error": err.Error()})
			return 1
		}
		p.markReady()
		if p.opts.mode == "init_only" {
			return 0
		}
		if p.beh.mode == modeCrash {
			crash = time.After(p.beh.crashAfter)
		}
	}

	select {
	case s := <-sigs:
		p.events.event("exit", map[string]any{"reason": "signal", "signal": s.String(), "status": 0})
		return 0
	case <-p.quit:
		// Let the quitquitquit response reach the client before the process goes.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = admin.Shutdown(ctx)
		p.events.event("exit", map[string]any{"reason": "quitquitquit", "status": 0})
		return 0
	case <-crash:
		p.events.event("exit", map[string]any{"reason": "crash mode", "status": 1})
		return 1
	}
}

// startAdmin binds the admin address from the bootstrap (127.0.0.1 in Istio's template), as Envoy does.
func (p *proxy) startAdmin() (*http.Server, error) {
	ln, err := net.Listen("tcp", p.boot.admin.String())
	if err != nil {
		return nil, fmt.Errorf("admin listener: %w", err)
	}
	srv := &http.Server{Handler: p.adminHandler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return srv, nil
}

func (p *proxy) startListeners() error {
	for _, l := range p.boot.httpListeners {
		if err := p.serveHTTPListener(l); err != nil {
			return err
		}
	}
	for _, t := range p.transparent {
		if err := p.serveTransparent(t); err != nil {
			return err
		}
	}
	return nil
}

// markReady sets the stats pilot-agent's readiness probe reads (pilot/cmd/pilot-agent/status/util/stats.go):
// it wants CDS and LDS update_success > 0, server.state 0 and workers_started 1.
func (p *proxy) markReady() {
	p.stats.counter("cluster_manager.cds.update_success").add(1)
	p.stats.counter("listener_manager.lds.update_success").add(1)
	p.stats.gauge("listener_manager.total_listeners_active").set(uint64(len(p.boot.httpListeners) + len(p.transparent)))
	concurrency := p.opts.concurrency
	if concurrency <= 0 {
		concurrency = 2 // Istio's default ProxyConfig.concurrency
	}
	p.stats.gauge("server.concurrency").set(uint64(concurrency))
	p.stats.gauge("listener_manager.workers_started").set(1)
	p.stats.gauge("server.live").set(1)
	p.setState(stateLive)
	p.events.event("ready", map[string]any{"startup_ms": time.Since(p.started).Milliseconds()})
}

func (p *proxy) setState(s serverState) {
	p.state.Store(int32(s))
	p.stats.gauge("server.state").set(uint64(s))
}

func (p *proxy) serverState() serverState { return serverState(p.state.Load()) }

func (p *proxy) addCloser(d drainable) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closers = append(p.closers, d)
}

// drainListeners stops accepting on the selected listeners, at once or, when graceful, after
// --drain-time-s as Envoy does. Open connections are left alone: pilot-agent SIGKILLs us after
// terminationDrainDuration anyway.
func (p *proxy) drainListeners(inboundOnly, graceful bool) {
	p.events.event("drain_listeners", map[string]any{"inboundonly": inboundOnly, "graceful": graceful})
	p.mu.Lock()
	var selected []drainable
	for _, d := range p.closers {
		if d.inbound || !inboundOnly {
			selected = append(selected, d)
		}
	}
	p.mu.Unlock()
	closeAll := func() {
		for _, d := range selected {
			d.close()
		}
	}
	if graceful {
		time.AfterFunc(time.Duration(p.opts.drainTimeS)*time.Second, closeAll)
		return
	}
	closeAll()
}
