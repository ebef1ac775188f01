package rules

import (
	"net/netip"
	"strings"
)

// ParseResolvConf returns the nameserver addresses of a resolv.conf, in order; lines it cannot parse are
// skipped as the libc resolver skips them.
func ParseResolvConf(text string) []netip.Addr {
	var out []netip.Addr
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "nameserver" {
			continue
		}
		if a, err := netip.ParseAddr(f[1]); err == nil && a.Zone() == "" {
			out = append(out, a.Unmap())
		}
	}
	return out
}
