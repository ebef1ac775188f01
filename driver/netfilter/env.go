package netfilter

import (
	"fmt"
	"net"
	"net/netip"
	"os"

	"github.com/istio-sidecar/istio-sidecar/driver/rules"
)

// DiscoverEnv gathers what rules.Parse needs about a namespace: the nameservers of the task's resolv.conf
// (resolvConf may be "" when DNS capture is off) and whether the namespace has a global IPv6 address, which
// is when Istio builds an IPv6 ruleset too.
func DiscoverEnv(nsPath, resolvConf string) (rules.Env, error) {
	var env rules.Env
	if resolvConf != "" {
		text, err := os.ReadFile(resolvConf)
		if err != nil {
			return env, fmt.Errorf("read resolv.conf %s: %w", resolvConf, err)
		}
		env.Nameservers = rules.ParseResolvConf(string(text))
	}
	err := inNS(nsPath, func() error {
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
