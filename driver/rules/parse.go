package rules

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Mode is the inbound interception mode.
type Mode string

const (
	ModeRedirect Mode = "REDIRECT"
	ModeTProxy   Mode = "TPROXY"
)

// maxListLen bounds every list so a typo (or a hostile job) cannot produce a payload of millions of rules.
const maxListLen = 10000

// Config is a checked Spec merged with Defaults and Env: every value typed, every combination valid.
type Config struct {
	mode Mode

	inboundAll      bool     // capture every inbound port except InboundExclude
	inboundPorts    []uint16 // capture only these (when !InboundAll)
	inboundExclude  []uint16 // Defaults.ExcludeInboundPorts then the job's, deduplicated
	outboundAll     bool     // capture every outbound destination except OutboundExclude
	outboundInclude []netip.Prefix
	outboundExclude []netip.Prefix
	outPortsInclude []uint16
	outPortsExclude []uint16
	excludeIfaces   []iface
	groupsExcept    bool     // the owner-group filter: groups bypass capture, or only groups are captured
	groups          []uint32 // GIDs, deduplicated

	dns         bool
	dnsAll      bool
	nameservers []netip.Addr // unmapped; split by family at Build time
	dropInvalid bool
	ipv6        bool

	proxyPort, inboundPort, tunnelPort, dnsPort uint16
	proxyUIDs, proxyGIDs                        []uint32
	tproxyMark                                  uint32
	hostLoopback                                netip.Prefix
}

// Parse checks spec against defaults and env. Errors are *FieldError (possibly joined) naming the HCL key.
func Parse(spec Spec, defaults Defaults, env Env) (Config, error) {
	if err := checkDefaults(defaults); err != nil {
		return Config{}, err
	}
	cfg := Config{
		proxyPort: defaults.OutboundCapturePort, inboundPort: defaults.InboundCapturePort,
		tunnelPort: defaults.InboundTunnelPort, dnsPort: defaults.DNSCapturePort,
		proxyUIDs: defaults.ProxyUIDs, proxyGIDs: defaults.ProxyGIDs,
		tproxyMark: defaults.TProxyMark, hostLoopback: defaults.HostLoopback.Masked(),
		ipv6: env.HasIPv6, dns: spec.DNSCapture, dnsAll: spec.CaptureAllDNS, dropInvalid: spec.DropInvalid,
	}
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	var err error
	cfg.mode, err = parseMode(spec.InterceptionMode)
	add(err)
	cfg.inboundAll, cfg.inboundPorts, err = parsePortsOrAll("include_inbound_ports", spec.IncludeInboundPorts)
	add(err)
	userExclude, err := parsePorts("exclude_inbound_ports", spec.ExcludeInboundPorts)
	add(err)
	cfg.inboundExclude = dedupe(append(append([]uint16(nil), defaults.ExcludeInboundPorts...), userExclude...))
	cfg.outboundAll, cfg.outboundInclude, err = parsePrefixesOrAll("include_outbound_ip_ranges", spec.IncludeOutboundIPRanges)
	add(err)
	cfg.outboundExclude, err = parsePrefixes("exclude_outbound_ip_ranges", spec.ExcludeOutboundIPRanges)
	add(err)
	cfg.outPortsInclude, err = parsePorts("include_outbound_ports", spec.IncludeOutboundPorts)
	add(err)
	cfg.outPortsExclude, err = parsePorts("exclude_outbound_ports", spec.ExcludeOutboundPorts)
	add(err)
	cfg.excludeIfaces, err = parseIfaces("exclude_interfaces", spec.ExcludeInterfaces)
	add(err)
	cfg.nameservers, err = checkNameservers(env.Nameservers)
	add(err)
	cfg.groupsExcept, cfg.groups, err = parseOwnerGroups(spec, env.GroupIDs)
	add(err)
	if spec.OutboundIPv4LoopbackCIDR != "" {
		cfg.hostLoopback, err = parseLoopbackCIDR("outbound_ipv4_loopback_cidr", spec.OutboundIPv4LoopbackCIDR)
		add(err)
	}
	if len(errs) > 0 {
		return Config{}, errors.Join(errs...)
	}
	if err := checkCombinations(spec, cfg); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

func checkCombinations(spec Spec, cfg Config) error {
	if !cfg.inboundAll && len(spec.ExcludeInboundPorts) > 0 {
		// Istio silently ignores exclusions next to an explicit list; say so instead.
		return fieldErr("exclude_inbound_ports", -1, strings.Join(spec.ExcludeInboundPorts, ","),
			`only applies when include_inbound_ports is "*"`, nil)
	}
	if cfg.dnsAll && !cfg.dns {
		return fieldErr("capture_all_dns", -1, "true", "requires dns_capture = true", nil)
	}
	if cfg.dns && !cfg.dnsAll && len(cfg.nameservers) == 0 {
		// Istio logs a warning and disables capture; failing is clearer than a sidecar that silently doesn't.
		return fieldErr("dns_capture", -1, "true",
			"needs a nameserver in the task's resolv.conf or capture_all_dns = true", nil)
	}
	return nil
}

func checkDefaults(d Defaults) error {
	ports := []struct {
		name string
		v    uint16
	}{
		{"outbound_capture_port", d.OutboundCapturePort}, {"inbound_capture_port", d.InboundCapturePort},
		{"inbound_tunnel_port", d.InboundTunnelPort}, {"dns_capture_port", d.DNSCapturePort},
	}
	for _, p := range ports {
		if p.v == 0 {
			return fieldErr("defaults."+p.name, -1, "0", "is not a port (1-65535)", nil)
		}
	}
	for i, p := range d.ExcludeInboundPorts {
		if p == 0 {
			return fieldErr("defaults.exclude_inbound_ports", i, "0", "is not a port (1-65535)", nil)
		}
	}
	if err := checkIDs("defaults.proxy_uids", d.ProxyUIDs); err != nil {
		return err
	}
	if err := checkIDs("defaults.proxy_gids", d.ProxyGIDs); err != nil {
		return err
	}
	if d.TProxyMark == 0 {
		return fieldErr("defaults.tproxy_mark", -1, "0", "must be non-zero", nil)
	}
	if reason := loopbackProblem(d.HostLoopback); reason != "" {
		return fieldErr("defaults.host_loopback", -1, d.HostLoopback.String(), reason, nil)
	}
	return nil
}

func parseMode(s string) (Mode, error) {
	switch Mode(s) {
	case "", ModeRedirect:
		return ModeRedirect, nil
	case ModeTProxy:
		return ModeTProxy, nil
	}
	return "", fieldErr("interception_mode", -1, s, `is not "REDIRECT" or "TPROXY"`, nil)
}

// parsePortsOrAll handles Istio's include lists: nil means "*", ["*"] means all, [] means none.
func parsePortsOrAll(field string, vals []string) (bool, []uint16, error) {
	if vals == nil {
		return true, nil, nil
	}
	all, err := wildcard(field, vals)
	if all || err != nil {
		return all, nil, err
	}
	ports, err := parsePorts(field, vals)
	return false, ports, err
}

func parsePrefixesOrAll(field string, vals []string) (bool, []netip.Prefix, error) {
	if vals == nil {
		return true, nil, nil
	}
	all, err := wildcard(field, vals)
	if all || err != nil {
		return all, nil, err
	}
	ps, err := parsePrefixes(field, vals)
	return false, ps, err
}

// wildcard reports whether vals is exactly ["*"]; "*" next to other values is an error.
func wildcard(field string, vals []string) (bool, error) {
	for i, v := range vals {
		if v == "*" {
			if len(vals) != 1 {
				return false, fieldErr(field, i, v, "must be the only value", nil)
			}
			return true, nil
		}
	}
	return false, nil
}

func checkLen(field string, vals []string) error {
	if len(vals) > maxListLen {
		return fieldErr(field, -1, fmt.Sprintf("%d values", len(vals)), fmt.Sprintf("exceeds %d values", maxListLen), nil)
	}
	return nil
}

// ParsePort parses element i of a port key as every port key's elements are parsed: a decimal number, so
// that "022" is port 22. Callers compare the numbers, never the strings.
func ParsePort(field string, i int, v string) (uint16, error) {
	n, err := strconv.ParseUint(v, 10, 16)
	if err != nil || n == 0 {
		return 0, fieldErr(field, i, v, "is not a port (1-65535)", nil)
	}
	return uint16(n), nil
}

func parsePorts(field string, vals []string) ([]uint16, error) {
	if err := checkLen(field, vals); err != nil {
		return nil, err
	}
	var out []uint16
	for i, v := range vals {
		n, err := ParsePort(field, i, v)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return dedupe(out), nil
}

func parsePrefixes(field string, vals []string) ([]netip.Prefix, error) {
	if err := checkLen(field, vals); err != nil {
		return nil, err
	}
	var out []netip.Prefix
	for i, v := range vals {
		p, err := parsePrefix(v)
		if err != nil {
			return nil, fieldErr(field, i, v, "is not a CIDR", nil)
		}
		if p.Addr().Is4In6() {
			// Such a range would go to the IPv6 family only, where IPv4 traffic never passes, as it does in
			// Istio's own SeparateV4V6: a silent no-op, so it is refused with the range it means.
			v4 := netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
			return nil, fieldErr(field, i, v, "is an IPv4-mapped IPv6 range; write it as "+v4.String(), nil)
		}
		out = append(out, p)
	}
	return dedupe(out), nil
}

// parsePrefix accepts a CIDR or a bare address (a host route), and masks host bits as iptables would.
func parsePrefix(v string) (netip.Prefix, error) {
	if !strings.Contains(v, "/") {
		a, err := netip.ParseAddr(v)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("bad address %q", v)
		}
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(v)
	if err != nil {
		return netip.Prefix{}, err
	}
	return p.Masked(), nil
}

func parseIfaces(field string, vals []string) ([]iface, error) {
	if err := checkLen(field, vals); err != nil {
		return nil, err
	}
	var out []iface
	for i, v := range vals {
		if reason := ifaceProblem(v); reason != "" {
			return nil, fieldErr(field, i, v, reason, nil)
		}
		out = append(out, iface(v))
	}
	return dedupe(out), nil
}

// ifaceProblem applies Linux's dev_valid_name (length < IFNAMSIZ, not "." or "..", no '/', ':' or whitespace)
// and, stricter than the kernel, allows only [A-Za-z0-9._-] plus iptables' trailing '+' wildcard, so a name
// can never carry quotes, '!' or other syntax into an iptables-restore line.
func ifaceProblem(v string) string {
	const ifNameSize = 16
	switch {
	case v == "":
		return "is empty"
	case len(v) >= ifNameSize:
		return fmt.Sprintf("is longer than %d bytes (IFNAMSIZ)", ifNameSize-1)
	case v == "." || v == "..":
		return "is not a valid interface name"
	}
	for i, r := range v {
		ok := r == '-' || r == '_' || r == '.' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z')
		if r == '+' && i == len(v)-1 && i > 0 {
			ok = true
		}
		if !ok {
			return fmt.Sprintf("has %q: an interface name allows only letters, digits, '-', '_', '.' and a trailing '+'", r)
		}
	}
	return ""
}

func checkNameservers(ns []netip.Addr) ([]netip.Addr, error) {
	var out []netip.Addr
	for i, a := range ns {
		if !a.IsValid() || a.Zone() != "" {
			return nil, fieldErr("env.nameservers", i, a.String(), "is not a usable nameserver address", nil)
		}
		out = append(out, a.Unmap())
	}
	return dedupe(out), nil
}

func dedupe[T comparable](in []T) []T {
	if len(in) == 0 {
		return nil
	}
	seen := make(map[T]bool, len(in))
	out := in[:0:0]
	for _, v := range in {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}
