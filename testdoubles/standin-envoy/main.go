// Command standin-envoy stands in for Envoy under Istio's real pilot-agent in tests, on machines where
// Envoy cannot be installed. pilot-agent starts it from ProxyConfig.binaryPath with Envoy's flags and the
// bootstrap it generated; the stand-in then serves what pilot-agent and the driver look at: the admin API
// (readiness stats, drain, quit, config_dump), the bootstrap's static health and Prometheus listeners, and
// the 15001/15006 capture listeners, which forward each connection as below and log it.
//
// With a control plane (the default) it subscribes over ADS through pilot-agent's XDS proxy and fetches its
// certificates over SDS, as Envoy does (package xds), serves what it received on /config_dump and /certs, and is
// ready, and opens 15001/15006, only once istiod's clusters and listeners have arrived. It then routes an
// outbound connection as Envoy would with what istiod gave: a mesh service's address (say a ServiceEntry's
// VIP) reaches one of the service's healthy endpoints, round robin. It originates no TLS: it speaks plaintext to
// the endpoint where Envoy would speak Istio's mTLS. With no control plane (STANDIN_ENVOY_CONTROL_PLANE=none) it
// opens the capture listeners itself, is ready at once, and forwards everything to the original destination.
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

	"github.com/istio-sidecar/istio-sidecar/testdoubles/standin-envoy/xds"
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
	opts    options
	beh     behaviour
	boot    *bootstrap
	stats   *statStore
	events  *eventLog
	tproxy  bool // ISTIO_META_INTERCEPTION_MODE=TPROXY: the inbound listener is transparent
	state   atomic.Int32
	started time.Time
	quit    chan struct{}
	ready   chan struct{} // closed when the server goes LIVE
	xds     *xds.Client   // nil with no control plane
	rr      roundRobin    // over a cluster's endpoints, for routed outbound connections

	mu      sync.Mutex
	closers []drainable
	// bound are the capture listeners open now, by Envoy's name; offered are those LDS last gave.
	bound   map[string]boundListener
	offered []transparentListener
	live    bool
	// drainedInbound and drainedAll keep drained capture listeners closed whatever LDS says next.
	drainedInbound, drainedAll bool
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
		started: time.Now(), quit: make(chan struct{}, 1), ready: make(chan struct{}),
		bound: map[string]boundListener{}}
	return p.serve(sigs)
}

func (p *proxy) serve(sigs <-chan os.Signal) int {
	p.setState(statePreInitializing)
	p.stats.gauge("listener_manager.workers_started").set(0)
	admin, err := p.startAdmin()
	if err != nil {
		p.events.event("fatal", map[string]any{"error": err.Error()})
		return 1
	}
	p.events.event("started", map[string]any{"mode": p.beh.mode, "control_plane": p.beh.controlPlane,
		"tproxy": p.tproxy, "admin": p.boot.admin.String(), "version": versionString(),
		"unknown_args": p.opts.unknown, "skipped_listeners": p.boot.skipped})
	// Envoy starts its listeners only once initialisation is done, so never-ready keeps them closed too.
	if p.beh.mode != modeNeverReady {
		if err := p.start(); err != nil {
			p.events.event("fatal", map[string]any{"error": err.Error()})
			return 1
		}
	}
	return p.wait(sigs, admin)
}

// start opens the bootstrap's static listeners, then either asks the control plane for the rest or, with none,
// opens the capture listeners itself and is ready at once.
func (p *proxy) start() error {
	for _, l := range p.boot.httpListeners {
		if err := p.serveHTTPListener(l); err != nil {
			return err
		}
	}
	if p.beh.controlPlane == controlPlaneXDS {
		return p.startXDS()
	}
	p.mu.Lock()
	p.offered = transparentListeners
	p.mu.Unlock()
	// No istiod: count the one configuration the stand-in gave itself as Envoy counts istiod's first CDS and LDS.
	p.countUpdate(xds.ClusterType, "", nil)
	p.countUpdate(xds.ListenerType, "", nil)
	return p.markLive()
}

func (p *proxy) wait(sigs <-chan os.Signal, admin *http.Server) int {
	var crash <-chan time.Time
	ready := p.ready
	for {
		select {
		case <-ready:
			ready = nil
			if p.opts.mode == "init_only" {
				return 0
			}
			if p.beh.mode == modeCrash {
				crash = time.After(p.beh.crashAfter)
			}
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

// markLive is the end of Envoy's initialisation: workers start, and with them the capture listeners; the stats
// pilot-agent's readiness probe reads (pilot/cmd/pilot-agent/status/util/stats.go) then say LIVE with workers
// started. It also wants CDS and LDS update_success > 0, which the updates themselves count.
func (p *proxy) markLive() error {
	p.mu.Lock()
	p.live = true
	err := p.reconcileLocked()
	if p.xds == nil {
		p.stats.gauge("listener_manager.total_listeners_active").set(uint64(len(p.boot.httpListeners) + len(p.bound)))
	}
	p.mu.Unlock()
	if err != nil {
		return err
	}
	concurrency := p.opts.concurrency
	if concurrency <= 0 {
		concurrency = 2 // Istio's default ProxyConfig.concurrency
	}
	p.stats.gauge("server.concurrency").set(uint64(concurrency))
	p.stats.gauge("listener_manager.workers_started").set(1)
	p.stats.gauge("server.live").set(1)
	p.setState(stateLive)
	p.events.event("ready", map[string]any{"startup_ms": time.Since(p.started).Milliseconds()})
	close(p.ready)
	return nil
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
		p.mu.Lock()
		p.drainedInbound, p.drainedAll = true, p.drainedAll || !inboundOnly
		p.mu.Unlock()
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
