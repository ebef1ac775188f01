package netfilter

import (
	"fmt"
	"net"
	"net/netip"
	"os"

	"github.com/istio-sidecar/istio-sidecar/driver/rules"
)

// Nameservers reads the nameservers of a resolv.conf; none for "".
func Nameservers(resolvConf string) ([]netip.Addr, error) {
	if resolvConf == "" {
		return nil, nil
	}
	text, err := os.ReadFile(resolvConf)
	if err != nil {
		return nil, fmt.Errorf("read resolv.conf %s: %w", resolvConf, err)
	}
	return rules.ParseResolvConf(string(text)), nil
}

// DiscoverEnv gathers what rules.Parse needs about a namespace: the nameservers of the task's resolv.conf
// (resolvConf may be "" when DNS capture is off) and whether the namespace has a global IPv6 address, which
// is when Istio builds an IPv6 ruleset too.
func DiscoverEnv(nsPath, resolvConf string) (rules.Env, error) {
	var env rules.Env
	var err error
	if env.Nameservers, err = Nameservers(resolvConf); err != nil {
		return env, err
	}
	err = inNS(nsPath, func() error {
		addrs, err := net.InterfaceAddrs()
		if err != nil {
			return fmt.Errorf("list addresses: %w", err)
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				ip, _ := netip.AddrFromSlice(n.IP)
				if ip.Is6() && !ip.Is4In6() && ip.IsGlobalUnicast() {
					env.HasIPv6 = true
				}
			}
		}
		return nil
	})
	return env, err
}
