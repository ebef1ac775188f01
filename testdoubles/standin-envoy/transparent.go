package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"time"
)

// transparentListener is one of the capture listeners Istio's iptables rules redirect to.
//
// Real Envoy gets these from istiod over LDS (virtualOutbound on 15001, virtualInbound on 15006, both with
// use_original_dst); so does the stand-in with a control plane, opening each when LDS has it and closing it when
// LDS drops it. With no control plane it opens both at start-up. Inbound connections, and all of them with no
// control plane, are forwarded to their original destination (Istio's passthrough clusters), which is what the
// driver's tests need to prove that capture works. Outbound ones with a control plane are routed as Envoy
// would by istiod's listeners, routes and endpoints (route.go), in plaintext; the passthrough is the fallback.
type transparentListener struct {
	name      string // in the connection log
	envoyName string // in config_dump and /listeners, as Istio names them
	port      uint16
	inbound   bool // drained by drain_listeners?inboundonly
}

var transparentListeners = []transparentListener{
	{name: "outbound", envoyName: "virtualOutbound", port: 15001},
	{name: "inbound", envoyName: "virtualInbound", port: 15006, inbound: true},
}

// Istio's default cluster connect_timeout (MeshConfig.connectTimeout).
const upstreamConnectTimeout = 10 * time.Second

// serveTransparent listens on all IPv4 addresses and, where the namespace has IPv6, all IPv6 addresses, and
// returns what closes them. Two sockets rather than one dual-stack socket keep SO_ORIGINAL_DST simple: a v4
// socket is asked at SOL_IP, a v6 one at SOL_IPV6, never a v4-mapped mix.
//
// In TPROXY mode the inbound sockets are transparent (IP_TRANSPARENT, IPV6_TRANSPARENT) before bind; failing
// to make one so is fatal, with the reason, since inbound capture could not work.
func (p *proxy) serveTransparent(t transparentListener) (func(), error) {
	var lc net.ListenConfig
	if t.transparentSocket(p.tproxy) {
		lc.Control = transparentControl
	}
	ctx := context.Background()
	ln4, err := lc.Listen(ctx, "tcp4", fmt.Sprintf("0.0.0.0:%d", t.port))
	if err != nil {
		return nil, fmt.Errorf("%s listener: %w", t.name, err)
	}
	lns := []net.Listener{ln4}
	var terr *transparentError
	if ln6, err := lc.Listen(ctx, "tcp6", fmt.Sprintf("[::]:%d", t.port)); err == nil {
		lns = append(lns, ln6)
	} else if errors.As(err, &terr) {
		_ = ln4.Close()
		return nil, fmt.Errorf("%s listener: %w", t.name, err)
	} else {
		p.events.event("ipv6_unavailable", map[string]any{"listener": t.name, "error": err.Error()})
	}
	closeAll := func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
	}
	for _, ln := range lns {
		p.closers = append(p.closers, drainable{inbound: t.inbound, close: func() { _ = ln.Close() }})
		go p.acceptTransparent(t, ln)
	}
	return closeAll, nil
}

func (p *proxy) acceptTransparent(t transparentListener, ln net.Listener) {
	for {
		c, err := ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			p.events.event("accept_error", map[string]any{"listener": t.name, "error": err.Error()})
			continue
		}
		go p.handleTransparent(t, c.(*net.TCPConn))
	}
}

func (p *proxy) handleTransparent(t transparentListener, c *net.TCPConn) {
	defer c.Close()
	local := addrPort(c.LocalAddr())
	prefix := listenerStatPrefix(netip.AddrPortFrom(unspecifiedLike(local.Addr()), t.port))
	p.stats.counter(prefix + "downstream_cx_total").add(1)
	active := p.stats.gauge(prefix + "downstream_cx_active")
	active.add(1)
	defer active.add(-1)

	src := addrPort(c.RemoteAddr())
	rec := connRecord{Listener: t.name, Port: t.port, Src: src.String(), Dst: local.String(), UID: os.Getuid(), SrcUID: -1}
	transparent := t.transparentSocket(p.tproxy)
	orig, err := originalDestination(transparent, c)
	if err != nil || directToListener(transparent, t, local, orig) {
		rec.Outcome = "no_original_dst"
		if err != nil {
			rec.Error = err.Error()
		}
		p.events.connection(rec)
		return
	}
	rec.OriginalDst = orig.String()
	rec.SrcUID = socketOwner(src, orig)
	var upstream string
	rec.Cluster, upstream, err = p.upstreamFor(t, orig)
	if err != nil {
		rec.Outcome, rec.Error = "no_healthy_upstream", err.Error()
		p.events.connection(rec)
		return
	}
	rec.Upstream = upstream
	up, err := upstreamDialer(t, orig).Dial("tcp", upstream)
	if err != nil {
		rec.Outcome, rec.Error = "dial_failed", err.Error()
		p.events.connection(rec)
		return
	}
	defer up.Close()
	rec.Outcome = "forwarded"
	p.events.connection(rec)
	splice(c, up.(*net.TCPConn))
}

// inboundPassthroughSource and inboundPassthroughSource6 are the addresses Envoy binds its inbound passthrough
// connections to (Istio's InboundPassthroughBindIpv4 and Ipv6): Istio's rules let traffic from them on loopback
// go straight to the app (`-A ISTIO_OUTPUT -s 127.0.0.6/32 -o lo -j RETURN`, and ::6/128 likewise); without
// that, the proxy user's connection to the app's own address would be captured again into 15006. ::6 exists
// only because the interception adds it to lo, as Istio's does.
var (
	inboundPassthroughSource  = netip.MustParseAddr("127.0.0.6")
	inboundPassthroughSource6 = netip.MustParseAddr("::6")
)

// upstreamDialer dials a connection's upstream as Envoy's clusters do: inbound connections (to the original
// destination) from 127.0.0.6 or ::6, outbound ones from whatever the kernel picks.
func upstreamDialer(t transparentListener, orig netip.AddrPort) *net.Dialer {
	d := &net.Dialer{Timeout: upstreamConnectTimeout}
	if t.inbound {
		src := inboundPassthroughSource
		if !orig.Addr().Unmap().Is4() {
			src = inboundPassthroughSource6
		}
		d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
	}
	return d
}

// splice copies both ways (io.Copy uses splice(2) between TCP sockets) and passes half-closes on, so a
// client that shuts down its write side still gets the server's answer. An error in either direction
// tears both down, as a reset would.
func splice(a, b *net.TCPConn) {
	done := make(chan struct{}, 2)
	cp := func(dst, src *net.TCPConn) {
		if _, err := io.Copy(dst, src); err != nil {
			_ = a.Close()
			_ = b.Close()
		} else {
			_ = dst.CloseWrite()
		}
		done <- struct{}{}
	}
	go cp(a, b)
	go cp(b, a)
	<-done
	<-done
}

func addrPort(a net.Addr) netip.AddrPort {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.AddrPort{}
	}
	ap := ta.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

func unspecifiedLike(a netip.Addr) netip.Addr {
	if a.Is4() {
		return netip.IPv4Unspecified()
	}
	return netip.IPv6Unspecified()
}

// listenerStatPrefix names a listener's stats as Envoy does: listener.0.0.0.0_15001. or listener.[::]_15001.
func listenerStatPrefix(ap netip.AddrPort) string {
	if ap.Addr().Is6() {
		return fmt.Sprintf("listener.[%s]_%d.", ap.Addr(), ap.Port())
	}
	return fmt.Sprintf("listener.%s_%d.", ap.Addr(), ap.Port())
}
