package netfilter

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/istio-sidecar/istio-sidecar/driver/rules"
)

// sendUDP sends the datagram given in dialUDPEnv to addr: how a child of the test asks a DNS server. Which
// server the query reached is read off the servers (see serveUDP): a reply from the test's stand-in agent,
// which is not the proxy user, would not find its way back through the proxy's conntrack zone.
func sendUDP(addr, _ string) (string, error) {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if _, err := c.Write([]byte(os.Getenv(dialUDPEnv))); err != nil {
		return "", err
	}
	return "sent\n", nil
}

// familyNetwork is "udp4" or "udp6" (for proto "udp"), as addr's family says.
func familyNetwork(proto, addr string) string {
	if netip.MustParseAddrPort(addr).Addr().Is6() {
		return proto + "6"
	}
	return proto + "4"
}

// serveUDP records, in received, the label of the server every datagram on addr inside nsPath reached.
func serveUDP(t *testing.T, nsPath, addr, label string, received *sync.Map) {
	t.Helper()
	var pc net.PacketConn
	listen := func() (err error) { pc, err = net.ListenPacket(familyNetwork("udp", addr), addr); return err }
	mustf(t, inNS(nsPath, listen), "listen %s", addr)
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			received.Store(string(buf[:n]), label)
		}
	}()
}

// dualScene is app namespace A (10.212.8.1, fd00:218::1) and peer B (.2 and .53, ::2 and ::53) on a veth pair,
// with stand-ins for Envoy's outbound and inbound listeners and for the agent's DNS proxy in A, an app on
// 8080 in A, and a TCP server on 80 and a DNS server on 53 in B.
type dualScene struct {
	a, pa, b, pb string
	dns          *sync.Map     // query payload -> the label of the server it reached
	queries      *atomic.Int64 // numbers the queries, so that each payload is new
}

func newDualScene(t *testing.T) dualScene {
	sc := dualScene{dns: &sync.Map{}, queries: &atomic.Int64{}}
	sc.a, sc.pa = newNS(t)
	sc.b, sc.pb = newNS(t)
	veth := "isc" + sc.a[len(sc.a)-6:]
	sh(t, "ip", "-n", sc.a, "link", "add", veth, "type", "veth", "peer", "name", "peer0", "netns", sc.b)
	for _, addr := range []string{"10.212.8.1/24", "fd00:218::1/64"} {
		sh(t, "ip", "-n", sc.a, "addr", "add", addr, "dev", veth, "nodad")
	}
	for _, addr := range []string{"10.212.8.2/24", "10.212.8.53/24", "fd00:218::2/64", "fd00:218::53/64"} {
		sh(t, "ip", "-n", sc.b, "addr", "add", addr, "dev", "peer0", "nodad")
	}
	sh(t, "ip", "-n", sc.a, "link", "set", veth, "up")
	sh(t, "ip", "-n", sc.b, "link", "set", "peer0", "up")
	for _, l := range []struct{ addr, label string }{
		{"0.0.0.0:15001", "outbound"}, {"[::]:15001", "outbound"}, {"0.0.0.0:15006", "inbound"}, {"[::]:15006", "inbound"},
		{"10.212.8.1:8080", "app"}, {"[fd00:218::1]:8080", "app"},
	} {
		serveTCP(t, sc.pa, l.addr, l.label)
	}
	serveTCP(t, sc.pb, "10.212.8.2:80", "peer")
	serveTCP(t, sc.pb, "[fd00:218::2]:80", "peer")
	serveUDP(t, sc.pa, "0.0.0.0:15053", "agent", sc.dns)
	serveUDP(t, sc.pa, "[::]:15053", "agent", sc.dns)
	serveUDP(t, sc.pb, "10.212.8.53:53", "nameserver", sc.dns)
	serveUDP(t, sc.pb, "[fd00:218::53]:53", "nameserver", sc.dns)
	return sc
}

// apply builds spec for the scene's namespace (both families, DNS to B's nameservers) with the proxy's IDs
// and applies it.
func (sc dualScene) apply(t *testing.T, spec rules.Spec, uids, gids []uint32) {
	d := rules.StandardDefaults()
	d.ProxyUIDs, d.ProxyGIDs = uids, gids
	env := rules.Env{HasIPv6: true, Nameservers: []netip.Addr{netip.MustParseAddr("10.212.8.53"), netip.MustParseAddr("fd00:218::53")}}
	cfg, err := rules.Parse(spec, d, env)
	mustf(t, err, "parse")
	rs, err := rules.Build(cfg, rules.Owner{AllocID: allocA})
	mustf(t, err, "build")
	_, err = Apply(testCtx(t), sc.pa, rs)
	mustf(t, err, "apply")
}

// dialCase is a connection from a process with the given IDs in A, and the reply it must get (for "dns", the
// server the query must reach): "%s" stands
// for the address dialled.
type dialCase struct {
	name string
	as   ids
	host string // the host part of the address dialled, per family: "peer", "self" or "dns"
	want string
}

var sceneHosts = map[string][2]string{
	"peer": {"10.212.8.2:80", "[fd00:218::2]:80"}, "self": {"10.212.8.1:8080", "[fd00:218::1]:8080"},
	"dns": {"10.212.8.53:53", "[fd00:218::53]:53"},
}

func (sc dualScene) check(t *testing.T, cases []dialCase) {
	t.Helper()
	for _, c := range cases {
		for fam, addr := range sceneHosts[c.host] {
			want, got := c.want, ""
			if strings.Contains(want, "%s") {
				want = fmt.Sprintf(want, addr)
			}
			if c.host == "dns" {
				got = sc.ask(t, c.as, addr)
			} else {
				got = dialAs(t, sc.pa, c.as, addr)
			}
			if got != want {
				t.Errorf("%s (IPv%d, uid %d gid %d to %s): got %q, want %q", c.name, 4+2*fam, c.as.uid, c.as.gid, addr, got, want)
			}
		}
	}
}

// ask sends a query to addr from a child with the given IDs and returns the label of the server it reached.
func (sc dualScene) ask(t *testing.T, as ids, addr string) string {
	t.Helper()
	query := fmt.Sprintf("query %d: uid %d gid %d to %s", sc.queries.Add(1), as.uid, as.gid, addr)
	if out := dialAs(t, sc.pa, as, addr, dialUDPEnv+"="+query); out != "sent" {
		t.Fatalf("child: %s", out)
	}
	var reached any
	waitFor(t, query, func() (err error) {
		if reached, _ = sc.dns.Load(query); reached == nil {
			err = fmt.Errorf("no server has it yet")
		}
		return err
	})
	return reached.(string)
}

// capturedOrDirect are the cases for processes that must be captured, TCP to 15001 with the original
// destination and DNS to the agent, and for processes that must reach the peer and the nameserver directly.
func capturedOrDirect(captured, direct []ids) []dialCase {
	var cases []dialCase
	for _, as := range captured {
		cases = append(cases, dialCase{"captured", as, "peer", "outbound %s"}, dialCase{"DNS captured", as, "dns", "agent"})
	}
	for _, as := range direct {
		cases = append(cases, dialCase{"direct", as, "peer", "peer none"}, dialCase{"DNS direct", as, "dns", "nameserver"})
	}
	return cases
}

// TestRealPacketsExtraProxyIDs: with Istio's -u 1337,2000 -g 1337,3000, a process with UID 2000 or GID 3000
// is treated as the proxy: its connections and DNS queries go direct, in both families, while any other
// process's land on 15001 with their original destination and on the agent's DNS proxy.
func TestRealPacketsExtraProxyIDs(t *testing.T) {
	requireRoot(t)
	sc := newDualScene(t)
	sc.apply(t, rules.Spec{DNSCapture: true}, []uint32{1337, 2000}, []uint32{1337, 3000})
	sc.check(t, capturedOrDirect([]ids{{2500, 2500}, {0, 0}}, []ids{{2000, 2000}, {2500, 3000}, {1337, 1337}}))
	sc.check(t, []dialCase{
		{"the proxy's call to its own address lands on 15006", ids{1337, 1337}, "self", "inbound %s"},
		// As in Istio: the first ID's "-o lo ! --uid-owner 1337 -j RETURN" comes before the extra IDs'
		// loopback redirect, so only the first ID's calls to a local address go through the inbound listener.
		{"the extra UID's call to its own address reaches the app", ids{2000, 2000}, "self", "app %s"},
	})
}

// TestRealPacketsOwnerGroups: with ISTIO_OUTBOUND_OWNER_GROUPS=4000 only a process in group 4000 is captured,
// its DNS too; with ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE=4000 every process but those, in both families.
func TestRealPacketsOwnerGroups(t *testing.T) {
	requireRoot(t)
	sc := newDualScene(t)
	proxy := []uint32{1337}
	inGroup, others := []ids{{2500, 4000}}, []ids{{2500, 2500}, {0, 0}}
	sc.apply(t, rules.Spec{DNSCapture: true, IncludeOutboundOwnerGroups: []string{"4000"}}, proxy, proxy)
	sc.check(t, capturedOrDirect(inGroup, others))
	sc.apply(t, rules.Spec{DNSCapture: true, ExcludeOutboundOwnerGroups: []string{"4000"}}, proxy, proxy)
	sc.check(t, capturedOrDirect(others, inGroup))
}

// TestApplyMostOwnerGroups: the largest include list Parse accepts, one rule of 48 owner matches plus our
// comment, is within what iptables-restore takes on both backends, and verifies after applying.
func TestApplyMostOwnerGroups(t *testing.T) {
	requireRoot(t)
	groups := make([]string, 48)
	for i := range groups {
		groups[i] = fmt.Sprint(5000 + i)
	}
	for _, backend := range []BackendName{NFTables, Legacy} {
		t.Run(string(backend), func(t *testing.T) {
			ctx := testCtx(t)
			name, path := newNS(t)
			addForeign(t, name, map[BackendName]string{NFTables: "nft", Legacy: "legacy"}[backend])
			rs := build(t, rules.Spec{IncludeOutboundOwnerGroups: groups}, rules.Env{}, allocA)
			reps, err := Apply(ctx, path, rs)
			mustf(t, err, "apply 48 owner groups")
			if reps[0].Backend != backend {
				t.Fatalf("applied with %s, want %s", reps[0].Backend, backend)
			}
			mustf(t, Verify(ctx, path, rs), "verify")
			if s := saveAll(t, name, backend); !strings.Contains(s, "! --gid-owner 5047 -m comment") {
				t.Errorf("the 48th group is not in the saved rule:\n%s", s)
			}
		})
	}
}
