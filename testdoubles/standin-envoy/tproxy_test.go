package main

import (
	"net"
	"net/netip"
	"testing"
)

func TestInterceptionFromEnv(t *testing.T) {
	for v, want := range map[string]bool{"": false, "REDIRECT": false, "NONE": false, "TPROXY": true} {
		got, err := interceptionFromEnv(func(k string) string { return map[string]string{envInterceptionMode: v}[k] })
		if err != nil || got != want {
			t.Errorf("%s=%q: got %v, %v; want %v", envInterceptionMode, v, got, err, want)
		}
	}
	if _, err := interceptionFromEnv(func(string) string { return "tproxy" }); err == nil {
		t.Error("a misspelt mode was accepted")
	}
	in, out := transparentListeners[1], transparentListeners[0]
	if !in.transparentSocket(true) || out.transparentSocket(true) || in.transparentSocket(false) {
		t.Error("only the inbound listener is transparent, and only in TPROXY mode")
	}
}

// TestOriginalDestinationTProxy: with TPROXY the original destination is the accepted socket's local address,
// here a real loopback connection's; without it, SO_ORIGINAL_DST is asked, which a connection without NAT lacks.
func TestOriginalDestinationTProxy(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got, err := originalDestination(true, c.(*net.TCPConn))
	if want := netip.MustParseAddrPort(ln.Addr().String()); err != nil || got != want {
		t.Errorf("TPROXY original destination %v, %v; want the local address %v", got, err, want)
	}
	if orig, err := originalDestination(false, c.(*net.TCPConn)); err == nil && orig != got {
		t.Errorf("REDIRECT original destination of an un-NATed connection: %v", orig)
	}
}

func TestDirectToListener(t *testing.T) {
	in := transparentListener{name: "inbound", port: 15006, inbound: true}
	ap := netip.MustParseAddrPort
	cases := []struct {
		transparent bool
		local, orig string
		want        bool
	}{
		{true, "10.0.0.1:8080", "10.0.0.1:8080", false},     // TPROXY: local address is the destination
		{true, "[fd00::7]:8080", "[fd00::7]:8080", false},   // also for an address not local to the pod
		{true, "10.0.0.1:15006", "10.0.0.1:15006", true},    // dialled the listener itself
		{false, "10.0.0.1:15006", "10.0.0.1:8080", false},   // REDIRECT with a NAT entry
		{false, "10.0.0.1:15006", "10.0.0.1:15006", true},   // REDIRECT without one
		{false, "127.0.0.1:15006", "127.0.0.1:15006", true}, // loopback to the listener
		{true, "127.0.0.1:15006", "127.0.0.1:15006", true},  // loopback to the listener, TPROXY
	}
	for _, c := range cases {
		if got := directToListener(c.transparent, in, ap(c.local), ap(c.orig)); got != c.want {
			t.Errorf("transparent=%v local=%s orig=%s: got %v", c.transparent, c.local, c.orig, got)
		}
	}
}
