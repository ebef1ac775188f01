package netfilter

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/istio-sidecar/istio-sidecar/driver/istio"
	"github.com/istio-sidecar/istio-sidecar/driver/rules"
)

// serveTProxy is Envoy's inbound listener in TPROXY mode: IP_TRANSPARENT (IPV6_TRANSPARENT) set before bind,
// and no NAT, so the original destination is the accepted socket's local address. It answers
// "<label> <local address>\n".
func serveTProxy(t *testing.T, nsPath, addr, label string) {
	t.Helper()
	network, level, opt := "tcp4", unix.SOL_IP, unix.IP_TRANSPARENT
	if netip.MustParseAddrPort(addr).Addr().Is6() {
		network, level, opt = "tcp6", unix.SOL_IPV6, unix.IPV6_TRANSPARENT
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), level, opt, 1) })
		return errors.Join(err, serr)
	}}
	var ln net.Listener
	mustf(t, inNS(nsPath, func() (err error) { ln, err = lc.Listen(t.Context(), network, addr); return err }), "listen %s", addr)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "%s %s\n", label, c.LocalAddr())
			c.Close()
		}
	}()
}

// routingSnapshot is the namespace's policy rules and table-133 routes, both families, as `ip` prints them.
func routingSnapshot(t *testing.T, nsName string) string {
	t.Helper()
	var b strings.Builder
	for _, fam := range []string{"-4", "-6"} {
		b.WriteString(sh(t, "ip", "-n", nsName, fam, "rule", "show"))
		for _, l := range strings.Split(sh(t, "ip", "-n", nsName, fam, "route", "show", "table", "all"), "\n") {
			if strings.Contains(l, "table 133") {
				b.WriteString(l + "\n")
			}
		}
	}
	return b.String()
}

// dialFails checks that addr cannot be reached from nsPath within a short timeout.
func dialFails(t *testing.T, nsPath, addr string) {
	t.Helper()
	err := inNS(nsPath, func() error {
		c, err := net.DialTimeout("tcp", addr, 700*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err
	})
	if err == nil {
		t.Errorf("%s reachable without the policy routing", addr)
	}
}

// TestTProxyRealPackets: app namespace A and peer B on a veth pair; B also routes a prefix that is not local
// to A (10.212.99.0/24, fd00:299::/64) through A. With the TPROXY ruleset applied, a connection from B to the
// app's address or to the routed prefix lands on a transparent listener on 15006 whose local address is the
// destination B dialled; the routed prefix only does so thanks to the policy routing (a packet to a local
// address would be delivered locally anyway).
func TestTProxyRealPackets(t *testing.T) {
	requireRoot(t)
	t.Run("IPv4", func(t *testing.T) {
		tproxyRealPackets(t, false, "10.212.9.1:8080", "10.212.99.7:8080", "10.212.9.2:80")
	})
	t.Run("IPv6", func(t *testing.T) {
		tproxyRealPackets(t, true, "[fd00:215::1]:8080", "[fd00:299::7]:8080", "[fd00:215::2]:80")
	})
}

func tproxyRealPackets(t *testing.T, v6 bool, app, routed, peer string) {
	ctx := testCtx(t)
	a, pa := newNS(t)
	b, pb := newNS(t)
	veth := "isc" + a[len(a)-6:]
	sh(t, "ip", "-n", a, "link", "add", veth, "type", "veth", "peer", "name", "peer0", "netns", b)
	sh(t, "ip", "-n", a, "link", "set", veth, "up")
	sh(t, "ip", "-n", b, "link", "set", "peer0", "up")
	sh(t, "ip", "-n", a, "addr", "add", "10.212.9.1/24", "dev", veth)
	sh(t, "ip", "-n", b, "addr", "add", "10.212.9.2/24", "dev", "peer0")
	sh(t, "ip", "-n", b, "route", "add", "10.212.99.0/24", "via", "10.212.9.1")
	if v6 {
		sh(t, "ip", "-n", a, "addr", "add", "fd00:215::1/64", "dev", veth, "nodad")
		sh(t, "ip", "-n", b, "addr", "add", "fd00:215::2/64", "dev", "peer0", "nodad")
		sh(t, "ip", "-n", b, "route", "add", "fd00:299::/64", "via", "fd00:215::1")
	}
	env, err := DiscoverEnv(pa, "")
	mustf(t, err, "discover")
	if env.HasIPv6 != v6 {
		t.Fatalf("HasIPv6 = %v", env.HasIPv6)
	}
	tproxy := build(t, rules.Spec{InterceptionMode: "TPROXY"}, env, allocA)
	fam := rules.IPv4
	if v6 {
		fam = rules.IPv6
	}
	routingBefore := routingSnapshot(t, a)
	sc := tproxyScene{ctx: ctx, a: a, pa: pa, pb: pb, v6: v6, app: app, routed: routed, peer: peer,
		env: env, tproxy: tproxy, fam: fam, routingBefore: routingBefore}
	sc.applyCaptures(t)
	applied := sc.reapplyChangesNothing(t)
	sc.driftedRoutingIsRepaired(t)
	sc.failedSwitchRestoresRouting(t, applied)
	sc.switchToRedirectThenCleanup(t)
}

// tproxyScene is one run of TestTProxyRealPackets: app namespace a (at pa), peer pb, the TPROXY ruleset for
// a, and a's routing before anything was applied.
type tproxyScene struct {
	ctx               context.Context
	a, pa, pb         string
	v6                bool
	app, routed, peer string
	env               rules.Env
	tproxy            rules.Ruleset
	fam               rules.Family
	routingBefore     string
}

// applyCaptures applies the TPROXY ruleset: the peer's connections to the app and to the routed prefix
// land on the transparent listener.
func (sc tproxyScene) applyCaptures(t *testing.T) {
	ctx, pa, pb, v6, tproxy := sc.ctx, sc.pa, sc.pb, sc.v6, sc.tproxy
	app, routed, peer := sc.app, sc.routed, sc.peer

	reps, err := Apply(ctx, pa, tproxy)
	mustf(t, err, "apply")
	want := Routing{Mark: 1337, Table: istio.TProxyRouteTable, Changed: true}
	for _, r := range reps {
		if r.Routing == nil || *r.Routing != want {
			t.Fatalf("report %q: routing %+v, want %+v", r, r.Routing, want)
		}
		t.Log(r)
	}
	if got := reps[len(reps)-1].String(); !strings.Contains(got, "policy routing: fwmark 1337 → table 133 added") {
		t.Errorf("report wording %q", got)
	}
	mustf(t, Verify(ctx, pa, tproxy), "verify")

	listen := "0.0.0.0:15006"
	if v6 {
		listen = "[::]:15006"
	}
	serveTProxy(t, pa, listen, "inbound")
	serveTCP(t, pa, app, "app")
	serveTCP(t, pb, peer, "peer")
	for _, dst := range []string{app, routed} {
		if got := dialIn(t, pb, dst); got != "inbound "+dst {
			t.Errorf("from the peer to %s: got %q, want the transparent listener with local address %s", dst, got, dst)
		}
	}
	t.Run("proxy uid not captured", func(t *testing.T) { proxyUIDGoesDirect(t, pa, peer) })
}

// reapplyChangesNothing re-applies and returns the routing as applied.
func (sc tproxyScene) reapplyChangesNothing(t *testing.T) string {
	ctx, a, pa, tproxy := sc.ctx, sc.a, sc.pa, sc.tproxy
	applied, iptApplied := routingSnapshot(t, a), saveAll(t, a, NFTables)
	for _, want := range []string{"fwmark 0x539 lookup 133", "local default dev lo table 133"} {
		if !strings.Contains(applied, want) {
			t.Errorf("no %q after apply:\n%s", want, applied)
		}
	}
	reps, err := Apply(ctx, pa, tproxy)
	mustf(t, err, "re-apply")
	for _, r := range reps {
		if r.Changed || r.Routing == nil || r.Routing.Changed {
			t.Errorf("re-apply changed something: %s", r)
		}
	}
	if got := routingSnapshot(t, a); got != applied {
		t.Errorf("re-apply changed the routing:\n%s\nvs\n%s", applied, got)
	}
	if got := saveAll(t, a, NFTables); got != iptApplied {
		t.Errorf("re-apply changed iptables-save:\n%s\nvs\n%s", iptApplied, got)
	}
	return applied
}

func (sc tproxyScene) driftedRoutingIsRepaired(t *testing.T) {
	ctx, a, pa, pb, tproxy, fam, routed := sc.ctx, sc.a, sc.pa, sc.pb, sc.tproxy, sc.fam, sc.routed
	// Without the fwmark rule the routed prefix is not local to A: Verify sees the drift, the connection
	// fails, and Apply puts the rule back.
	sh(t, "ip", "-n", a, famFlag(fam), "rule", "del", "fwmark", "1337", "lookup", "133")
	if err := Verify(ctx, pa, tproxy); !errors.Is(err, ErrDrift) || !strings.Contains(err.Error(), "fwmark 1337 lookup 133") {
		t.Errorf("verify without the rule: %v", err)
	}
	dialFails(t, pb, routed)
	reps, err := Apply(ctx, pa, tproxy)
	mustf(t, err, "repair")
	if r := reps[len(reps)-1].Routing; r == nil || !r.Changed {
		t.Errorf("repair report %s", reps[len(reps)-1])
	}
	if got := dialIn(t, pb, routed); got != "inbound "+routed {
		t.Errorf("after repair: got %q", got)
	}
}

func (sc tproxyScene) failedSwitchRestoresRouting(t *testing.T, applied string) {
	ctx, a, pa, env, tproxy := sc.ctx, sc.a, sc.pa, sc.env, sc.tproxy
	// A REDIRECT ruleset that fails in iptables puts back the routing it removed first.
	broken := build(t, rules.Spec{}, env, allocA)
	broken.Families[0] = asFamily(build(t, rules.Spec{}, rules.Env{HasIPv6: true}, allocA).Families[1], rules.IPv4)
	if _, err := Apply(ctx, pa, broken); err == nil {
		t.Fatal("apply of a broken ruleset succeeded")
	} else {
		t.Log(err)
	}
	if got := routingSnapshot(t, a); got != applied {
		t.Errorf("failed switch did not restore the routing:\n%s\nvs\n%s", applied, got)
	}
	mustf(t, Verify(ctx, pa, tproxy), "verify after the failed switch")
}

func (sc tproxyScene) switchToRedirectThenCleanup(t *testing.T) {
	ctx, a, pa, pb, env, tproxy, app, routingBefore := sc.ctx, sc.a, sc.pa, sc.pb, sc.env, sc.tproxy, sc.app, sc.routingBefore
	redirect := build(t, rules.Spec{}, env, allocA)
	// The same allocation switching to REDIRECT loses the routing; inbound still reaches 15006, by NAT.
	reps, err := Apply(ctx, pa, redirect)
	mustf(t, err, "switch to REDIRECT")
	for _, r := range reps {
		if r.Routing == nil || !r.Routing.Removed || !strings.Contains(r.String(), "policy routing: fwmark 1337 → table 133 removed") {
			t.Errorf("switch report %s", r)
		}
	}
	if got := routingSnapshot(t, a); got != routingBefore {
		t.Errorf("routing left after the switch to REDIRECT:\n%s", got)
	}
	if got := dialIn(t, pb, app); !strings.HasPrefix(got, "inbound ") {
		t.Errorf("REDIRECT inbound: got %q", got)
	}

	// Back to TPROXY, then Cleanup removes routing and rules.
	_, err = Apply(ctx, pa, tproxy)
	mustf(t, err, "back to TPROXY")
	res, err := Cleanup(ctx, pa, allocA)
	mustf(t, err, "cleanup")
	if res.Removed == 0 {
		t.Errorf("cleanup %+v", res)
	}
	if got := routingSnapshot(t, a); got != routingBefore {
		t.Errorf("routing left after cleanup:\n%s\nbefore:\n%s", got, routingBefore)
	}
	if got := saveAll(t, a, NFTables); strings.Contains(got, rules.TagPrefix) || strings.Contains(got, "ISTIO_") {
		t.Errorf("iptables rules left after cleanup:\n%s", got)
	}
}
