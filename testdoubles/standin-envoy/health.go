package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
)

// routeHandler serves one static listener of the bootstrap: the first route whose prefix matches wins, as in
// Envoy's route table, and the request is proxied to the route's static cluster. For Istio's template this
// sends :15021/healthz/ready to the agent on :15020, so the health port reflects the agent's readiness
// (which itself reads our /stats), and :15090/stats/prometheus to the admin port.
func routeHandler(routes []route) http.Handler {
	proxies := make([]http.Handler, len(routes))
	for i, r := range routes {
		if !r.upstream.IsValid() {
			continue
		}
		rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: r.upstream.String()})
		rp.ErrorHandler = func(w http.ResponseWriter, _ *http.Request, err error) {
			// Envoy's body for a failed upstream connection; tests and humans recognise it.
			http.Error(w, "upstream connect error or disconnect/reset before headers. reset reason: connection failure, "+
				"transport failure reason: "+err.Error(), http.StatusServiceUnavailable)
		}
		proxies[i] = rp
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		for i, r := range routes {
			if !strings.HasPrefix(req.URL.Path, r.prefix) {
				continue
			}
			if proxies[i] == nil {
				http.Error(w, "no healthy upstream", http.StatusServiceUnavailable)
				return
			}
			proxies[i].ServeHTTP(w, req)
			return
		}
		// Envoy sends an empty 404 when no route matches.
		w.WriteHeader(http.StatusNotFound)
	})
}

// serveHTTPListener opens every address of a static listener and serves its routes, counting connections
// under Envoy's listener.<address>.downstream_cx_* names, which pilot-agent knows to ignore when it waits for
// active connections to reach zero (pkg/envoy/agent.go).
func (p *proxy) serveHTTPListener(l httpListener) error {
	for _, a := range l.addrs {
		ln, err := net.Listen("tcp", a.String())
		if err != nil {
			return fmt.Errorf("listener %s on %s: %w", l.name, a, err)
		}
		prefix := listenerStatPrefix(a)
		total, active := p.stats.counter(prefix+"downstream_cx_total"), p.stats.gauge(prefix+"downstream_cx_active")
		active.set(0)
		srv := &http.Server{
			Handler: routeHandler(l.routes),
			ConnState: func(_ net.Conn, s http.ConnState) {
				switch s {
				case http.StateNew:
					total.add(1)
					active.add(1)
				case http.StateClosed, http.StateHijacked:
					active.add(-1)
				}
			},
		}
		p.addCloser(drainable{close: func() { _ = ln.Close() }})
		go func() { _ = srv.Serve(ln) }()
	}
	return nil
}
