package istio

import (
	"fmt"
	"net"
	"regexp"
	"strconv"
)

// dnsName is a host name as pilot-agent dials it (letters, digits, '-' and '.', at most 253 characters).
var dnsName = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9.]{0,251}[A-Za-z0-9])?$`)

// IsDNSName reports whether v is such a host name.
func IsDNSName(v string) bool { return dnsName.MatchString(v) }

// CheckHostPort checks an address of istiod's as pilot-agent takes it (discovery and CA addresses): a DNS name
// or an IP address, and a port from 1 to 65535 written as its number. The driver and the controller both use it.
func CheckHostPort(v string) error {
	host, port, err := net.SplitHostPort(v)
	if err != nil || host == "" {
		return fmt.Errorf("must be host:port, such as istiod.istio-system.svc:15012")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
		return fmt.Errorf("has no valid port")
	}
	if net.ParseIP(host) == nil && !dnsName.MatchString(host) {
		return fmt.Errorf("has an invalid host")
	}
	return nil
}
