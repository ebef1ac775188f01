package netfilter

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/istio-sidecar/istio-sidecar/driver/rules"
)

// dialEnv makes the test binary act as a client: dial the address, print the first reply line, exit. It is
// how the test runs a connecting process under the proxy's UID inside the namespace.
const (
	dialEnv     = "ISC_TEST_DIAL"
	dialFromEnv = "ISC_TEST_DIAL_FROM" // optional source address
	dialUDPEnv  = "ISC_TEST_DIAL_UDP"  // instead: send this datagram over UDP, print "sent"
)

func TestMain(m *testing.M) {
	if addr := os.Getenv(dialEnv); addr != "" {
		dial := dialTCP
		if os.Getenv(dialUDPEnv) != "" {
			dial = sendUDP
		}
		reply, err := dial(addr, os.Getenv(dialFromEnv))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Print(reply)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func dialTCP(addr, from string) (string, error) {
	d := net.Dialer{Timeout: 3 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	return bufio.NewReader(c).ReadString('\n')
}

// serveTCP listens inside nsPath, on IPv4 or IPv6 as addr says, and answers every connection with
// "<label> <original destination>\n".
func serveTCP(t *testing.T, nsPath, addr, label string) {
	t.Helper()
	network := "tcp4"
	if netip.MustParseAddrPort(addr).Addr().Is6() {
		network = "tcp6"
	}
	var ln net.Listener
	mustf(t, inNS(nsPath, func() (err error) { ln, err = net.Listen(network, addr); return err }), "listen %s", addr)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "%s %s\n", label, originalDst(c))
			c.Close()
		}
	}()
}

// originalDst reads SO_ORIGINAL_DST (IP6T_SO_ORIGINAL_DST on IPv6), the address the client dialled before
// REDIRECT rewrote it, or "none" when the connection was not redirected.
func originalDst(c net.Conn) string {
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		return "?"
	}
	if c.LocalAddr().(*net.TCPAddr).IP.To4() == nil {
		return originalDst6(raw)
	}
	var dst string
	_ = raw.Control(func(fd uintptr) {
		const soOriginalDst = 80
		// sockaddr_in fits in the 16 bytes of an IPv6Mreq: family(2) port(2, big endian) addr(4).
		m, err := syscall.GetsockoptIPv6Mreq(int(fd), syscall.IPPROTO_IP, soOriginalDst)
		if err != nil {
			dst = "none"
			return
		}
		a := m.Multiaddr
		dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte{a[4], a[5], a[6], a[7]}), uint16(a[2])<<8|uint16(a[3])).String()
	})
	return dst
}

func dialIn(t *testing.T, nsPath, addr string) string {
	t.Helper()
	var reply string
	mustf(t, inNS(nsPath, func() (err error) { reply, err = dialTCP(addr, ""); return err }), "dial %s", addr)
	return strings.TrimSpace(reply)
}

// TestRealPackets: app namespace A (10.212.7.1) and peer B (10.212.7.2, .3) joined by a veth pair; A gets the
// sidecar rules and stand-in listeners on 15001, 15006 and 15053.
func TestRealPackets(t *testing.T) {
	requireRoot(t)
	ctx := testCtx(t)
	a, pa := newNS(t)
	b, pb := newNS(t)
	veth := "isc" + a[len(a)-6:]
	sh(t, "ip", "-n", a, "link", "add", veth, "type", "veth", "peer", "name", "peer0", "netns", b)
	sh(t, "ip", "-n", a, "addr", "add", "10.212.7.1/24", "dev", veth)
	sh(t, "ip", "-n", b, "addr", "add", "10.212.7.2/24", "dev", "peer0")
	sh(t, "ip", "-n", b, "addr", "add", "10.212.7.3/24", "dev", "peer0")
	sh(t, "ip", "-n", a, "link", "set", veth, "up")
	sh(t, "ip", "-n", b, "link", "set", "peer0", "up")

	rs := build(t, rules.Spec{
		DNSCapture:              true,
		ExcludeOutboundPorts:    []string{"5432"},
		ExcludeOutboundIPRanges: []string{"10.212.7.3/32"},
	}, rules.Env{Nameservers: []netip.Addr{netip.MustParseAddr("10.212.7.53")}}, allocA)
	_, err := Apply(ctx, pa, rs)
	mustf(t, err, "apply")

	serveTCP(t, pa, "0.0.0.0:15001", "outbound")
	serveTCP(t, pa, "0.0.0.0:15006", "inbound")
	serveTCP(t, pa, "10.212.7.1:8080", "app")
	for _, addr := range []string{"10.212.7.2:80", "10.212.7.2:5432", "10.212.7.3:80"} {
		serveTCP(t, pb, addr, "peer")
	}

	cases := []struct{ name, ns, dial, want string }{
		{"outbound captured with original destination", pa, "10.212.7.2:80", "outbound 10.212.7.2:80"},
		{"excluded port goes direct", pa, "10.212.7.2:5432", "peer"},
		{"excluded CIDR goes direct", pa, "10.212.7.3:80", "peer"},
		{"inbound from peer lands on 15006", pb, "10.212.7.1:8080", "inbound 10.212.7.1:8080"},
	}
	for _, c := range cases {
		if got := dialIn(t, c.ns, c.dial); !strings.HasPrefix(got, c.want) {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
	t.Run("proxy uid not captured", func(t *testing.T) { proxyUIDGoesDirect(t, pa, "10.212.7.2:80") })
	t.Run("dns to nameserver lands on 15053", func(t *testing.T) { dnsCaptured(t, pa, "10.212.7.53:53") })
}

// proxyUIDGoesDirect dials addr from namespace pa as UID 1337, which must reach the peer unredirected.
func proxyUIDGoesDirect(t *testing.T, pa, addr string) {
	if got := dialAsProxy(t, pa, addr); got != "peer none" {
		t.Errorf("uid 1337 reached %q, want the peer directly", got)
	}
}

// dialAsProxy dials addr from namespace pa in a child running as the proxy's UID and GID 1337, and returns
// the reply line.
func dialAsProxy(t *testing.T, pa, addr string) string {
	return dialAsProxyFrom(t, pa, addr, "")
}

// dialAsProxyFrom is dialAsProxy from a given source address, as Envoy's passthrough clusters bind one.
func dialAsProxyFrom(t *testing.T, pa, addr, from string) string {
	return dialAs(t, pa, ids{uid: 1337, gid: 1337}, addr, dialFromEnv+"="+from)
}

// ids are the credentials a child dials with: its UID and its one group, no supplementary ones.
type ids struct{ uid, gid uint32 }

// dialAs runs the test binary as a dialer in namespace pa with the given credentials (env adds to its
// environment, e.g. dialUDPEnv) and returns the reply line.
func dialAs(t *testing.T, pa string, as ids, addr string, env ...string) string {
	t.Helper()
	cmd := exec.Command(copyExecutable(t))
	cmd.Env = append([]string{dialEnv + "=" + addr}, env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: as.uid, Gid: as.gid, Groups: []uint32{}}}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	mustf(t, startIn(pa, cmd), "start child as uid %d gid %d", as.uid, as.gid)
	mustf(t, cmd.Wait(), "child as uid %d gid %d: %s", as.uid, as.gid, out.String())
	return strings.TrimSpace(out.String())
}

// dnsCaptured sends a UDP query from namespace pa to the nameserver, which must land on 15053 of the same family.
func dnsCaptured(t *testing.T, pa, nameserver string) {
	network, listen := "udp4", "0.0.0.0:15053"
	if netip.MustParseAddrPort(nameserver).Addr().Is6() {
		network, listen = "udp6", "[::]:15053"
	}
	var pc net.PacketConn
	mustf(t, inNS(pa, func() (err error) { pc, err = net.ListenPacket(network, listen); return err }), "listen %s", listen)
	defer pc.Close()
	got := make(chan string, 1)
	go func() {
		buf := make([]byte, 512)
		n, _, err := pc.ReadFrom(buf)
		if err == nil {
			got <- string(buf[:n])
		}
	}()
	var conn net.Conn
	mustf(t, inNS(pa, func() (err error) { conn, err = net.Dial(network, nameserver); return err }), "dial dns")
	defer conn.Close()
	// UDP may be sent before the reader goroutine runs; resend until the listener reports the query.
	var query string
	waitFor(t, "query on 15053", func() error {
		if _, err := conn.Write([]byte("dns-query")); err != nil {
			return err
		}
		select {
		case query = <-got:
			return nil
		case <-time.After(100 * time.Millisecond):
			return fmt.Errorf("nothing yet")
		}
	})
	if query != "dns-query" {
		t.Errorf("15053 got %q", query)
	}
}

// copyExecutable copies the test binary where UID 1337 may execute it (go test's build dir is root-only).
func copyExecutable(t *testing.T) string {
	self, err := os.Executable()
	mustf(t, err, "executable")
	data, err := os.ReadFile(self)
	mustf(t, err, "read test binary")
	dir, err := os.MkdirTemp("", "isc-test-")
	mustf(t, err, "temp dir")
	t.Cleanup(func() { os.RemoveAll(dir) })
	mustf(t, os.Chmod(dir, 0o755), "chmod")
	path := dir + "/dialer"
	mustf(t, os.WriteFile(path, data, 0o755), "write dialer")
	return path
}
