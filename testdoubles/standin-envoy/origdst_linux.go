package main

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"unsafe"
)

// soOriginalDst is SO_ORIGINAL_DST (linux/netfilter_ipv4.h) at SOL_IP and IP6T_SO_ORIGINAL_DST
// (linux/netfilter_ipv6/ip6_tables.h) at SOL_IPV6: both 80. The syscall package names neither.
const soOriginalDst = 80

// originalDst asks conntrack where a REDIRECTed connection was headed before the NAT rewrote it.
func originalDst(c *net.TCPConn) (netip.AddrPort, error) {
	level, size := syscall.SOL_IP, uint32(16) // sizeof(struct sockaddr_in)
	if addrPort(c.LocalAddr()).Addr().Is6() {
		level, size = syscall.SOL_IPV6, 28 // sizeof(struct sockaddr_in6)
	}
	raw, err := c.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("original destination: %w", err)
	}
	var buf [28]byte
	var serr error
	err = raw.Control(func(fd uintptr) {
		_, _, e := syscall.Syscall6(syscall.SYS_GETSOCKOPT, fd, uintptr(level), soOriginalDst,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&size)), 0)
		if e != 0 {
			serr = e
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("getsockopt SO_ORIGINAL_DST: %w", err)
	}
	return decodeSockaddr(buf[:size])
}

// socketOwner returns the uid owning the client socket local→remote in this network namespace, or -1
// when the client is elsewhere (inbound traffic from another host) or already gone.
func socketOwner(local, remote netip.AddrPort) int {
	path := "/proc/net/tcp"
	if local.Addr().Is6() {
		path = "/proc/net/tcp6"
	}
	f, err := os.Open(path)
	if err != nil {
		return -1
	}
	defer f.Close()
	if uid, ok := findSocketUID(f, local, remote); ok {
		return uid
	}
	return -1
}

// transparentControl sets IP_TRANSPARENT (IPV6_TRANSPARENT on a tcp6 socket) before bind, so that the socket
// accepts connections TPROXY hands it for addresses that are not local. It needs CAP_NET_RAW or CAP_NET_ADMIN;
// the driver grants the first.
func transparentControl(network, _ string, c syscall.RawConn) error {
	level, opt, name := syscall.SOL_IP, syscall.IP_TRANSPARENT, "IP_TRANSPARENT"
	if network == "tcp6" {
		level, opt, name = syscall.SOL_IPV6, ipv6Transparent, "IPV6_TRANSPARENT"
	}
	var serr error
	if err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), level, opt, 1) }); err != nil {
		return err
	}
	if serr != nil {
		return &transparentError{opt: name, err: serr}
	}
	return nil
}

// ipv6Transparent is IPV6_TRANSPARENT (linux/in6.h); the syscall package does not name it.
const ipv6Transparent = 75
