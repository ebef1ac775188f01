package main

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
)

// boundListener is a capture listener with its sockets open.
type boundListener struct {
	t     transparentListener
	close func()
}

// onListeners follows LDS: istiod's virtualOutbound and virtualInbound become the capture listeners, on the
// ports LDS gives them. Every other listener of a sidecar is bind_to_port false, which Envoy never binds either.
func (p *proxy) onListeners(ls []*listenerv3.Listener) {
	var offered []transparentListener
	for _, l := range ls {
		if t, ok := captureListener(l); ok {
			offered = append(offered, t)
		}
	}
	p.stats.gauge("listener_manager.total_listeners_active").set(uint64(len(p.boot.httpListeners) + len(ls)))
	p.mu.Lock()
	defer p.mu.Unlock()
	p.offered = offered
	if err := p.reconcileLocked(); err != nil {
		// Envoy counts a listener it cannot bind (listener_create_failure) and carries on; so does the stand-in.
		p.stats.counter("listener_manager.listener_create_failure").add(1)
		p.events.event("listener_error", map[string]any{"error": err.Error()})
	}
}

// captureListener maps an LDS listener onto the capture listener of the same Envoy name.
func captureListener(l *listenerv3.Listener) (transparentListener, bool) {
	if l.GetBindToPort() != nil && !l.GetBindToPort().GetValue() {
		return transparentListener{}, false
	}
	for _, t := range transparentListeners {
		if t.envoyName != l.GetName() {
			continue
		}
		if port := l.GetAddress().GetSocketAddress().GetPortValue(); port > 0 && port <= 0xffff {
			t.port = uint16(port)
		}
		return t, true
	}
	return transparentListener{}, false
}

// reconcileLocked makes the open capture listeners those offered, once the server is live (Envoy's workers run)
// and unless drain_listeners closed them for good. p.mu is held.
func (p *proxy) reconcileLocked() error {
	if !p.live {
		return nil
	}
	want := map[string]transparentListener{}
	for _, t := range p.offered {
		if !p.drainedLocked(t) {
			want[t.envoyName] = t
		}
	}
	for name, b := range p.bound {
		if w, ok := want[name]; !ok || w != b.t {
			b.close()
			delete(p.bound, name)
		}
	}
	var errs []error
	for name, t := range want {
		if _, ok := p.bound[name]; ok {
			continue
		}
		closeFn, err := p.serveTransparent(t)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p.bound[name] = boundListener{t: t, close: closeFn}
	}
	return errors.Join(errs...)
}

func (p *proxy) drainedLocked(t transparentListener) bool {
	return p.drainedAll || (p.drainedInbound && t.inbound)
}

// boundListeners lists the open capture listeners by port.
func (p *proxy) boundListeners() []transparentListener {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]transparentListener, 0, len(p.bound))
	for _, b := range p.bound {
		out = append(out, b.t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].port < out[j].port })
	return out
}

// listenerLines is the body of /listeners: name::address per address, as Envoy prints it.
func (p *proxy) listenerLines() []string {
	var lines []string
	for _, l := range p.boot.httpListeners {
		for _, a := range l.addrs {
			lines = append(lines, fmt.Sprintf("%s::%s", l.name, a))
		}
	}
	client := p.xdsClient()
	if client == nil {
		for _, t := range p.boundListeners() {
			lines = append(lines, fmt.Sprintf("%s::0.0.0.0:%d", t.envoyName, t.port))
		}
		return lines
	}
	for _, e := range client.Snapshot().Listeners {
		sa := e.Resource.(*listenerv3.Listener).GetAddress().GetSocketAddress()
		if a, err := netip.ParseAddr(sa.GetAddress()); err == nil && sa.GetPortValue() <= 0xffff {
			lines = append(lines, fmt.Sprintf("%s::%s", e.Name, netip.AddrPortFrom(a, uint16(sa.GetPortValue()))))
		}
	}
	return lines
}
