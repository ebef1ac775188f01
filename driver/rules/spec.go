package rules

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"

	"github.com/istio-sidecar/istio-sidecar/driver/istio"
)

// Spec is the user-facing interception config as it arrives from a jobspec's config {} block. Keys are Istio's
// sidecar annotations (traffic.sidecar.istio.io/...) in snake case. Multi-valued options take one value per
// element. For the two include lists, an absent (nil) list means Istio's default "*" and an empty list means
// "capture nothing", as an empty annotation does in Istio.
type Spec struct {
	// IncludeInboundPorts: ports whose inbound TCP traffic goes to Envoy, or ["*"] for all (default).
	IncludeInboundPorts []string `codec:"include_inbound_ports"`
	// ExcludeInboundPorts: ports skipped when IncludeInboundPorts is "*"; added to Defaults.ExcludeInboundPorts.
	ExcludeInboundPorts []string `codec:"exclude_inbound_ports"`
	// IncludeOutboundIPRanges: CIDRs whose outbound traffic goes to Envoy, or ["*"] for all (default).
	IncludeOutboundIPRanges []string `codec:"include_outbound_ip_ranges"`
	// ExcludeOutboundIPRanges: CIDRs whose outbound traffic bypasses Envoy ("*" is not allowed, as in Istio).
	ExcludeOutboundIPRanges []string `codec:"exclude_outbound_ip_ranges"`
	// IncludeOutboundPorts: destination ports always sent to Envoy, whatever the IP ranges say.
	IncludeOutboundPorts []string `codec:"include_outbound_ports"`
	// ExcludeOutboundPorts: destination ports (TCP and UDP) that bypass Envoy.
	ExcludeOutboundPorts []string `codec:"exclude_outbound_ports"`
	// ExcludeInterfaces: interfaces whose traffic, in and out, is never captured.
	ExcludeInterfaces []string `codec:"exclude_interfaces"`
	// InterceptionMode: "REDIRECT" (default) or "TPROXY" for inbound traffic.
	InterceptionMode string `codec:"interception_mode"`
	// DNSCapture sends DNS to the resolv.conf nameservers to pilot-agent's DNS proxy (ISTIO_META_DNS_CAPTURE).
	DNSCapture bool `codec:"dns_capture"`
	// CaptureAllDNS captures DNS to any address on port 53, not only to the resolv.conf nameservers.
	CaptureAllDNS bool `codec:"capture_all_dns"`
	// DropInvalid drops conntrack-INVALID packets instead of letting them reset connections (INVALID_DROP).
	DropInvalid bool `codec:"drop_invalid"`
	// IncludeOutboundOwnerGroups: groups (names or GIDs) whose processes' outbound traffic goes to Envoy, or
	// ["*"] for all (default); [] captures none (ISTIO_OUTBOUND_OWNER_GROUPS).
	IncludeOutboundOwnerGroups []string `codec:"include_outbound_owner_groups"`
	// ExcludeOutboundOwnerGroups: groups whose outbound traffic bypasses Envoy, when IncludeOutboundOwnerGroups
	// is "*" (ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE).
	ExcludeOutboundOwnerGroups []string `codec:"exclude_outbound_owner_groups"`
	// OutboundIPv4LoopbackCIDR replaces Defaults.HostLoopback when set (ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR).
	OutboundIPv4LoopbackCIDR string `codec:"outbound_ipv4_loopback_cidr"`
}

// Defaults are the plugin-wide settings every allocation shares. They come from the operator, not from jobs.
type Defaults struct {
	OutboundCapturePort uint16 // Envoy's virtual outbound listener (-p)
	InboundCapturePort  uint16 // Envoy's virtual inbound listener (-z)
	InboundTunnelPort   uint16 // HBONE, never captured (-e)
	DNSCapturePort      uint16 // pilot-agent's DNS proxy
	// ExcludeInboundPorts are never captured inbound: Envoy's Prometheus, health and agent status ports (-d).
	ExcludeInboundPorts []uint16
	// ProxyUIDs and ProxyGIDs get the proxy's treatment (-u, -g): their traffic is never captured. The proxy's
	// own ID first, then any extra ones, in the order Istio's lists take them.
	ProxyUIDs  []uint32
	ProxyGIDs  []uint32
	TProxyMark uint32
	// HostLoopback is the IPv4 loopback destination that app-to-app traffic uses (ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR).
	HostLoopback netip.Prefix
}

// StandardDefaults returns Istio's defaults for a sidecar.
func StandardDefaults() Defaults {
	return Defaults{
		OutboundCapturePort: istio.OutboundCapturePort,
		InboundCapturePort:  istio.InboundCapturePort,
		InboundTunnelPort:   istio.TunnelPort,
		DNSCapturePort:      istio.DNSCapturePort,
		ExcludeInboundPorts: []uint16{istio.PrometheusPort, istio.HealthPort, istio.StatusPort},
		ProxyUIDs:           []uint32{istio.ProxyUID},
		ProxyGIDs:           []uint32{istio.ProxyGID},
		TProxyMark:          istio.TProxyMark,
		HostLoopback:        netip.MustParsePrefix("127.0.0.1/32"),
	}
}

// Env is what the edge discovered about the allocation's network namespace, so that Parse and Build stay pure.
type Env struct {
	// Nameservers from the task's resolv.conf, in file order.
	Nameservers []netip.Addr
	// HasIPv6 is true when the namespace has a global IPv6 address; only then is an IPv6 ruleset built.
	HasIPv6 bool
	// GroupIDs are the GIDs of the group names the owner-group filters use (OwnerGroupNames), as the host
	// resolves them. Parse refuses a name missing here.
	GroupIDs map[string]uint32
}

// Owner identifies the allocation whose rules these are; its ID goes into every rule's comment.
type Owner struct {
	AllocID string
}

// TagPrefix starts the comment on every rule the driver writes: "istio-sidecar:alloc=<allocID>".
const TagPrefix = "istio-sidecar:alloc="

// allocIDPattern accepts Nomad's UUIDs and other short tokens. It excludes quotes, spaces, '=' and control
// characters so a tag can never break out of its --comment argument or be confused with another tag.
var allocIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ErrBadOwner is returned for an alloc ID that cannot be used in a tag.
var ErrBadOwner = errors.New("invalid alloc ID")

// Validate checks that the alloc ID is safe to embed in a rule comment.
func (o Owner) Validate() error {
	if !allocIDPattern.MatchString(o.AllocID) {
		return fmt.Errorf("%w %q: want 1-64 of [A-Za-z0-9._-], starting with a letter or digit", ErrBadOwner, o.AllocID)
	}
	return nil
}

// tag is the comment text carried by every rule of this owner.
func (o Owner) tag() string { return TagPrefix + o.AllocID }

// FieldError reports a bad value of one Spec or Defaults field, named by its HCL key.
type FieldError struct {
	Field  string // e.g. "exclude_outbound_ip_ranges[1]"
	Value  string // the value as given; quoted when printed
	Reason string // e.g. "is not a CIDR"
	Err    error  // underlying parse error, if any
}

func (e *FieldError) Error() string {
	msg := fmt.Sprintf("%s: %q %s", e.Field, e.Value, e.Reason)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(field string, i int, value, reason string, err error) *FieldError {
	if i >= 0 {
		field = fmt.Sprintf("%s[%d]", field, i)
	}
	return &FieldError{Field: field, Value: value, Reason: reason, Err: err}
}
