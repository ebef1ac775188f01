package main

import (
	"fmt"
	"net"
	"net/netip"
)

// envInterceptionMode is the proxy metadata pilot-agent gets from the driver (ISTIO_META_INTERCEPTION_MODE)
// and Envoy inherits with the rest of pilot-agent's environment. Real Envoy learns the mode from istiod's
// listeners (virtualInbound with transparent: true in TPROXY mode); the stand-in has no istiod and reads it.
const envInterceptionMode = "ISTIO_META_INTERCEPTION_MODE"

// interceptionFromEnv reports whether inbound traffic arrives by TPROXY. Istio's modes are REDIRECT (the
// default), TPROXY and NONE; anything else is refused, as a misspelt mode would test the wrong thing.
func interceptionFromEnv(getenv func(string) string) (tproxy bool, err error) {
	switch v := getenv(envInterceptionMode); v {
	case "", "REDIRECT", "NONE":
		return false, nil
	case "TPROXY":
		return true, nil
	default:
		return false, fmt.Errorf("%s=%q: want REDIRECT, TPROXY or NONE", envInterceptionMode, v)
	}
}

// transparentSocket says whether listener t must be bound with IP_TRANSPARENT: Istio's virtualInbound in
// TPROXY mode. Outbound stays REDIRECT-based in both modes, as in Istio.
func (t transparentListener) transparentSocket(tproxy bool) bool { return tproxy && t.inbound }

// originalDestination is where the client meant to go. TPROXY does not NAT: the accepted socket's local
// address is the destination the client dialled. After REDIRECT, conntrack knows it (SO_ORIGINAL_DST).
func originalDestination(transparent bool, c *net.TCPConn) (netip.AddrPort, error) {
	if transparent {
		return addrPort(c.LocalAddr()), nil
	}
	return originalDst(c)
}

// directToListener reports a connection made straight to the listener rather than captured: forwarding it
// would loop back to us. After REDIRECT that is no NAT entry (the original destination is the local address)
// or the listener's own port on loopback; with TPROXY, a connection whose local port is the listener's.
func directToListener(transparent bool, t transparentListener, local, orig netip.AddrPort) bool {
	if orig.Port() == t.port && orig.Addr().IsLoopback() {
		return true
	}
	if transparent {
		return local.Port() == t.port
	}
	return orig == local
}

// transparentError is a failed IP_TRANSPARENT: fatal, unlike a missing IPv6 stack, and explained.
type transparentError struct {
	opt string
	err error
}

func (e *transparentError) Error() string {
	return fmt.Sprintf("setsockopt %s for %s=TPROXY (needs CAP_NET_RAW, which the driver grants the proxy "+
		"user as an ambient capability in TPROXY mode, or CAP_NET_ADMIN): %v", e.opt, envInterceptionMode, e.err)
}

func (e *transparentError) Unwrap() error { return e.err }
