//go:build !linux

package main

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
)

// The stand-in's transparent listeners need Linux's conntrack; elsewhere every connection is treated as
// having no original destination, which keeps the tool buildable for the pure tests.
func originalDst(*net.TCPConn) (netip.AddrPort, error) {
	return netip.AddrPort{}, errors.ErrUnsupported
}

func socketOwner(netip.AddrPort, netip.AddrPort) int { return -1 }

func transparentControl(string, string, syscall.RawConn) error {
	return &transparentError{opt: "IP_TRANSPARENT", err: errors.ErrUnsupported}
}
