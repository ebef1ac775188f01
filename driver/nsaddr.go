package driver

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/istio-sidecar/istio-sidecar/driver/netfilter"
)

// namespaceAddress is the group's own address: the first global unicast address in the network namespace at
// path, IPv4 before IPv6. Nomad 1.6 hands a driver the namespace's address only for docker (HostsConfig); for
// every other driver the fallback, the node's address, would make istiod take every WorkloadEntry at that node
// address (every meshed group on the node) for this proxy's own. A variable so that tests without root can
// stand in for the namespace.
var namespaceAddress = func(path string) (netip.Addr, error) {
	var addrs []net.Addr
	err := netfilter.InNamespace(path, func() error {
		var aerr error
		addrs, aerr = net.InterfaceAddrs()
		return aerr
	})
	if err != nil {
		return netip.Addr{}, fmt.Errorf("reading the addresses in %s: %w", path, err)
	}
	var v6 netip.Addr
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipn.IP)
		if !ok || !ip.IsGlobalUnicast() {
			continue
		}
		if ip = ip.Unmap(); ip.Is4() {
			return ip, nil
		}
		if !v6.IsValid() {
			v6 = ip
		}
	}
	if !v6.IsValid() {
		return netip.Addr{}, fmt.Errorf("no global unicast address in %s", path)
	}
	return v6, nil
}
