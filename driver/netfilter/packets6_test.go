package netfilter

import (
	"context"
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
	"syscall"
	"testing"

	"github.com/istio-sidecar/istio-sidecar/driver/rules"
)

// originalDst6 reads IP6T_SO_ORIGINAL_DST (SOL_IPV6, 80), the sockaddr_in6 the client dialled before REDIRECT.
// IPv6MTUInfo starts with a RawSockaddrInet6 and is larger than one, which the kernel accepts.
func originalDst6(raw syscall.RawConn) string {
	const ip6tSoOriginalDst = 80
	dst := "?"
	_ = raw.Control(func(fd uintptr) {
		info, err := syscall.GetsockoptIPv6MTUInfo(int(fd), syscall.IPPROTO_IPV6, ip6tSoOriginalDst)
		if err != nil {
			dst = "none"
			return
		}
		// The port is in network byte order in memory; read it back as the bytes it is.
		var port [2]byte
		binary.NativeEndian.PutUint16(port[:], info.Addr.Port)
		dst = netip.AddrPortFrom(netip.AddrFrom16(info.Addr.Addr), binary.BigEndian.Uint16(port[:])).String()
	})
	return dst
}

// TestRealPacketsIPv6: as TestRealPackets, over IPv6, on each backend. App namespace A (fd00:214::1) and
// peer B (fd00:214::2, ::3) on a veth pair; A is inspected as the driver inspects it, so the IPv6 family
// exists only because the namespace has a global address.
func TestRealPacketsIPv6(t *testing.T) {
	requireRoot(t)
	for _, backend := range []BackendName{NFTables, Legacy} {
		t.Run(string(backend), func(t *testing.T) { realPacketsIPv6(t, backend) })
	}
}

func realPacketsIPv6(t *testing.T, backend BackendName) {
	ctx := testCtx(t)
	a, pa := newNS(t)
	if backend == Legacy {
		addForeign(t, a, "legacy") // detection picks the flavour that alone holds rules
	}
	b, pb := newNS(t)
	veth := "isc" + a[len(a)-6:]
	sh(t, "ip", "-n", a, "link", "add", veth, "type", "veth", "peer", "name", "peer0", "netns", b)
	sh(t, "ip", "-n", a, "link", "set", veth, "up")
	sh(t, "ip", "-n", b, "link", "set", "peer0", "up")

	// Link-local addresses alone do not make an IPv6 ruleset, as in Istio.
	env, err := DiscoverEnv(pa, "")
	mustf(t, err, "discover before the global address")
	if env.HasIPv6 {
		t.Fatal("HasIPv6 with link-local addresses only")
	}
	// nodad: the addresses are usable at once, instead of after duplicate address detection.
	sh(t, "ip", "-n", a, "addr", "add", "fd00:214::1/64", "dev", veth, "nodad")
	sh(t, "ip", "-n", b, "addr", "add", "fd00:214::2/64", "dev", "peer0", "nodad")
	sh(t, "ip", "-n", b, "addr", "add", "fd00:214::3/64", "dev", "peer0", "nodad")
	env, err = DiscoverEnv(pa, "")
	mustf(t, err, "discover")
	if !env.HasIPv6 {
		t.Fatal("DiscoverEnv does not see the namespace's global IPv6 address")
	}

	rs := applyIPv6(t, ctx, pa, env, backend)
	ipv6Packets(t, pa, pb)
	cleanupIPv6(t, ctx, pa, rs)
}

// applyIPv6 applies a DNS-capturing ruleset with excluded ports and CIDRs in the namespace: the IPv6 family,
// and ::6 on lo with it.
func applyIPv6(t *testing.T, ctx context.Context, pa string, env rules.Env, backend BackendName) rules.Ruleset {
	env.Nameservers = []netip.Addr{netip.MustParseAddr("fd00:214::53")}
	rs := build(t, rules.Spec{
		DNSCapture:              true,
		ExcludeOutboundPorts:    []string{"5432"},
		ExcludeOutboundIPRanges: []string{"fd00:214::3/128", "10.212.7.3/32"},
	}, env, allocA)
	if _, ok := rs.Family(rules.IPv6); !ok {
		t.Fatal("no IPv6 family in the ruleset")
	}
	reps, err := Apply(ctx, pa, rs)
	mustf(t, err, "apply")
	if len(reps) != 2 || reps[1].Family != rules.IPv6 || reps[1].Backend != backend || reps[1].Rules == 0 {
		t.Fatalf("reports %v", reps)
	}
	if !reps[1].Passthrough6Added || !strings.Contains(reps[1].String(), "::6/128 added to lo") {
		t.Errorf("IPv6 report does not say ::6 was added to lo: %s", reps[1])
	}
	if present, ours, err := passthrough6State(ctx, pa); err != nil || !present || !ours {
		t.Fatalf("::6/128 on lo after apply: present %v, ours %v, %v", present, ours, err)
	}
	mustf(t, Verify(ctx, pa, rs), "verify")
	return rs
}

// ipv6Packets checks where connections from the app (pa) and from the peer (pb) land.
func ipv6Packets(t *testing.T, pa, pb string) {
	serveTCP(t, pa, "[::]:15001", "outbound")
	serveTCP(t, pa, "[::]:15006", "inbound")
	serveTCP(t, pa, "[fd00:214::1]:8080", "app")
	for _, addr := range []string{"[fd00:214::2]:80", "[fd00:214::2]:5432", "[fd00:214::3]:80"} {
		serveTCP(t, pb, addr, "peer")
	}

	cases := []struct{ name, ns, dial, want string }{
		{"outbound captured with original destination", pa, "[fd00:214::2]:80", "outbound [fd00:214::2]:80"},
		{"excluded port goes direct", pa, "[fd00:214::2]:5432", "peer none"},
		{"excluded CIDR goes direct", pa, "[fd00:214::3]:80", "peer none"},
		{"app to itself is not captured", pa, "[fd00:214::1]:8080", "app"},
		{"inbound from peer lands on 15006", pb, "[fd00:214::1]:8080", "inbound [fd00:214::1]:8080"},
	}
	for _, c := range cases {
		if got := dialIn(t, c.ns, c.dial); !strings.HasPrefix(got, c.want) {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
	t.Run("proxy uid not captured", func(t *testing.T) { proxyUIDGoesDirect(t, pa, "[fd00:214::2]:80") })
	t.Run("proxy uid to the app's own address lands on 15006", func(t *testing.T) {
		// Envoy's outbound call to a workload in its own namespace goes through the inbound listener.
		if got := dialAsProxy(t, pa, "[fd00:214::1]:8080"); got != "inbound [fd00:214::1]:8080" {
			t.Errorf("uid 1337 to its own address reached %q", got)
		}
	})
	t.Run("dns to nameserver lands on 15053", func(t *testing.T) { dnsCaptured(t, pa, "[fd00:214::53]:53") })
	t.Run("proxy uid from ::6 to the app's own address goes to the app", func(t *testing.T) {
		// Envoy's inbound passthrough: bound to ::6 (which needs the address on lo), let through to the app.
		if got := dialAsProxyFrom(t, pa, "[fd00:214::1]:8080", "::6"); !strings.HasPrefix(got, "app ") {
			t.Errorf("uid 1337 from ::6 reached %q, want the app", got)
		}
	})
}

// cleanupIPv6 removes both families' rules and our ::6.
func cleanupIPv6(t *testing.T, ctx context.Context, pa string, rs rules.Ruleset) {
	res, err := Cleanup(ctx, pa, allocA)
	mustf(t, err, "cleanup")
	want := 0
	for _, fr := range rs.Families {
		want += fr.RuleCount()
	}
	if res.Removed != want {
		t.Errorf("cleanup removed %d rules, want both families' %d", res.Removed, want)
	}
	if present, _, err := passthrough6State(ctx, pa); err != nil || present || !res.Passthrough6Removed {
		t.Errorf("::6/128 after cleanup: present %v (%v), reported removed %v", present, err, res.Passthrough6Removed)
	}
}

// TestPassthrough6NotOursIsKept: an ::6 on lo that the driver did not add (Istio's, an operator's: no nodad
// flag) is used as it is and stays after cleanup.
func TestPassthrough6NotOursIsKept(t *testing.T) {
	requireRoot(t)
	ctx := testCtx(t)
	name, path := newNS(t)
	sh(t, "ip", "-n", name, "link", "set", "lo", "up")
	sh(t, "ip", "-n", name, "addr", "add", "::6/128", "dev", "lo")
	rs := build(t, rules.Spec{}, rules.Env{HasIPv6: true}, allocA)
	reps, err := Apply(ctx, path, rs)
	mustf(t, err, "apply")
	if len(reps) != 2 || reps[1].Passthrough6Added {
		t.Errorf("reports %v: ::6 was already there", reps)
	}
	res, err := Cleanup(ctx, path, allocA)
	mustf(t, err, "cleanup")
	if present, ours, err := passthrough6State(ctx, path); err != nil || !present || ours || res.Passthrough6Removed {
		t.Errorf("the pre-existing ::6: present %v, ours %v (%v); cleanup says removed %v", present, ours, err, res.Passthrough6Removed)
	}
}

// TestPassthrough6DriftIsSeen: ::6 taken off lo under running rules is drift (IPv6 inbound passthrough would
// fail), and the next apply puts it back.
func TestPassthrough6DriftIsSeen(t *testing.T) {
	requireRoot(t)
	ctx := testCtx(t)
	name, path := newNS(t)
	sh(t, "ip", "-n", name, "link", "set", "lo", "up")
	rs := build(t, rules.Spec{}, rules.Env{HasIPv6: true}, allocA)
	_, err := Apply(ctx, path, rs)
	mustf(t, err, "apply")
	mustf(t, Verify(ctx, path, rs), "verify")
	sh(t, "ip", "-n", name, "addr", "del", "::6/128", "dev", "lo")
	if err := Verify(ctx, path, rs); !errors.Is(err, ErrDrift) || !strings.Contains(err.Error(), "::6/128") {
		t.Fatalf("verify without ::6: %v, want drift naming ::6/128", err)
	}
	reps, err := Apply(ctx, path, rs)
	mustf(t, err, "re-apply")
	if reps[0].Changed || reps[1].Changed || !reps[1].Passthrough6Added {
		t.Errorf("re-apply %v: want the rules left alone and ::6 added back", reps)
	}
	mustf(t, Verify(ctx, path, rs), "verify after re-apply")
	_, err = Cleanup(ctx, path, allocA)
	mustf(t, err, "cleanup")
}
