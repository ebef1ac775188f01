package driver

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"

	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/istio-sidecar/istio-sidecar/driver/netfilter"
	"github.com/istio-sidecar/istio-sidecar/driver/rules"
)

// resolvConf is where the nameservers that DNS capture redirects come from: raw_exec and exec tasks in a
// group namespace resolve through the host's file unless the group sets a dns block.
const resolvConf = "/etc/resolv.conf"

// defaultHostExcludePorts keep the host reachable in host mode whatever the proxy's state: SSH, Nomad (HTTP,
// RPC, Serf), Consul (server RPC, Serf LAN/WAN, HTTP, HTTPS, gRPC, gRPC-TLS, DNS) and Vault (API, cluster).
// Excluded both ways; loopback is never captured anyway. Interception cannot tell the agent's traffic from an
// app's by user (raw_exec apps often run as root, and Istio no longer excludes root), so it goes by port.
var defaultHostExcludePorts = []string{
	"22", "4646", "4647", "4648", "8300", "8301", "8302", "8500", "8501", "8502", "8503", "8600", "8200", "8201",
}

// interceptionInputs is what a ruleset is built from; persisted so that a recovered task rebuilds the same
// ruleset for its drift check without reading the namespace again.
type interceptionInputs struct {
	Spec        rules.Spec
	Nameservers []string
	HasIPv6     bool
	// GroupIDs are the GIDs the host gave the spec's owner-group names when the task started.
	GroupIDs map[string]uint32
}

// mergeSpec lays the task's interception settings over the fleet's, key by key: a key the job sets replaces
// the plugin's value whole, as Istio's annotations replace mesh-wide defaults.
func mergeSpec(fleet, task rules.Spec) rules.Spec {
	out := fleet
	for _, f := range []struct{ dst, src *[]string }{
		{&out.IncludeInboundPorts, &task.IncludeInboundPorts},
		{&out.ExcludeInboundPorts, &task.ExcludeInboundPorts},
		{&out.IncludeOutboundIPRanges, &task.IncludeOutboundIPRanges},
		{&out.ExcludeOutboundIPRanges, &task.ExcludeOutboundIPRanges},
		{&out.IncludeOutboundPorts, &task.IncludeOutboundPorts},
		{&out.ExcludeOutboundPorts, &task.ExcludeOutboundPorts},
		{&out.ExcludeInterfaces, &task.ExcludeInterfaces},
	} {
		if *f.src != nil {
			*f.dst = *f.src
		}
	}
	if task.IncludeOutboundOwnerGroups != nil || task.ExcludeOutboundOwnerGroups != nil {
		// The two owner-group lists are one filter (an exclude list needs the include list at "*"): a job that
		// sets either replaces the fleet's filter whole, rather than meeting the fleet's other list.
		out.IncludeOutboundOwnerGroups, out.ExcludeOutboundOwnerGroups = task.IncludeOutboundOwnerGroups, task.ExcludeOutboundOwnerGroups
	}
	if task.OutboundIPv4LoopbackCIDR != "" {
		out.OutboundIPv4LoopbackCIDR = task.OutboundIPv4LoopbackCIDR
	}
	if task.InterceptionMode != "" {
		out.InterceptionMode = task.InterceptionMode
	}
	out.DNSCapture = fleet.DNSCapture || task.DNSCapture
	out.CaptureAllDNS = fleet.CaptureAllDNS || task.CaptureAllDNS
	out.DropInvalid = fleet.DropInvalid || task.DropInvalid
	return out
}

// withHostSafety adds the host-safety ports in host mode: out of outbound capture always, and out of inbound
// capture when every inbound port is captured. An explicit inbound list may not name one: a job must not be
// able to send the host's SSH or Nomad RPC to a proxy that may be down. Ports are compared as the numbers
// they parse to ("022" is 22), and the ports added are written canonically.
func withHostSafety(spec rules.Spec, hostPorts []string) (rules.Spec, error) {
	host := make([]uint16, len(hostPorts))
	canonical := make([]string, len(hostPorts))
	for i, v := range hostPorts {
		p, err := rules.ParsePort("host_exclude_ports", i, v)
		if err != nil {
			return spec, err
		}
		host[i], canonical[i] = p, strconv.Itoa(int(p))
	}
	spec.ExcludeOutboundPorts = append(slices.Clone(spec.ExcludeOutboundPorts), canonical...)
	if spec.IncludeInboundPorts == nil || slices.Equal(spec.IncludeInboundPorts, []string{"*"}) {
		spec.ExcludeInboundPorts = append(slices.Clone(spec.ExcludeInboundPorts), canonical...)
		return spec, nil
	}
	for i, v := range spec.IncludeInboundPorts {
		p, err := rules.ParsePort("include_inbound_ports", i, v)
		if err != nil {
			return spec, err
		}
		if slices.Contains(host, p) {
			return spec, fmt.Errorf("include_inbound_ports[%d]: %q is port %d, one of the host's own ports (host_exclude_ports), never captured in host mode", i, v, p)
		}
	}
	return spec, nil
}

// placement is where Nomad runs the task's group, as far as interception cares.
type placement struct {
	// netns is the group's network namespace, and host is host mode (the rules go in the plugin's own
	// namespace). Neither is a group namespace not at hand, which only the operator CLI's dry run meets: it
	// is taken to have IPv4 only and is not inspected.
	netns string
	host  bool
	// dnsServers are the group's dns block's: DNS capture redirects those rather than resolv.conf's.
	dnsServers []string
}

func placementOf(cfg *drivers.TaskConfig) placement {
	var at placement
	if cfg.NetworkIsolation != nil {
		at.netns = cfg.NetworkIsolation.Path
	}
	at.host = at.netns == ""
	if cfg.DNS != nil {
		at.dnsServers = cfg.DNS.Servers
	}
	return at
}

// interceptionPlan is the task's interception as the two config blocks and the placement decide it, before
// anything on the host is read or changed.
type interceptionPlan struct {
	placement
	// spec is the fleet's settings under the job's, plus the host-safety ports in host mode.
	spec rules.Spec
}

// planInterception decides the task's interception; a pure function of the plugin settings, the task
// config and the placement.
func planInterception(s *settings, tc TaskConfig, at placement) (interceptionPlan, error) {
	p := interceptionPlan{placement: at, spec: mergeSpec(s.Interception, tc.Spec)}
	if !at.host {
		return p, nil
	}
	if isTProxy(p.spec) {
		// TPROXY's Envoy holds CAP_NET_RAW, whose raw sockets and marks act on the namespace they are opened in:
		// the allocation's own in a group, the host's in host mode.
		return p, fmt.Errorf("interception_mode: %q is for bridge and CNI networking only; host mode uses \"REDIRECT\"", p.spec.InterceptionMode)
	}
	var err error
	p.spec, err = withHostSafety(p.spec, s.HostExcludePorts)
	return p, err
}

// mode is the interception mode pilot-agent is told about.
func (p interceptionPlan) mode() rules.Mode {
	if isTProxy(p.spec) {
		return rules.ModeTProxy
	}
	return rules.ModeRedirect
}

// inspect reads what the rules depend on: the namespace the plan names, and the host's GIDs of the group
// names the owner-group filters use.
func (p interceptionPlan) inspect() (interceptionInputs, error) {
	in, err := p.inspectNetwork()
	if err != nil {
		return in, err
	}
	if in.GroupIDs, err = netfilter.LookupGroups(rules.OwnerGroupNames(p.spec)); err != nil {
		return in, fmt.Errorf("owner groups: %w", err)
	}
	return in, nil
}

func (p interceptionPlan) inspectNetwork() (interceptionInputs, error) {
	if p.host || p.netns != "" {
		return inspectNamespace(p.netns, p.spec, p.dnsServers)
	}
	// No namespace to inspect: a group namespace with IPv4 only; resolv.conf is read for DNS capture alone.
	servers, err := netfilter.Nameservers(dnsResolvConf(p.spec))
	if err != nil {
		return interceptionInputs{}, fmt.Errorf("DNS capture: %w", err)
	}
	return inputs(p.spec, rules.Env{Nameservers: servers}), nil
}

func isTProxy(spec rules.Spec) bool { return spec.InterceptionMode == string(rules.ModeTProxy) }

// proxyCaps are the capabilities the proxy keeps. TPROXY's inbound listener sets IP_TRANSPARENT (and Envoy
// marks sockets with SO_MARK), which the kernel allows with CAP_NET_RAW (SO_MARK since Linux 5.17). Istio runs
// Envoy as root for it; here it stays the proxy user with that one capability. Not CAP_NET_ADMIN: held in the
// initial user namespace, it would let netlink requests reach other namespaces, the host's included, through
// the namespace IDs a bridge group's namespace holds.
func proxyCaps(spec rules.Spec) []string {
	if isTProxy(spec) {
		return []string{"net_raw"}
	}
	return nil
}

// inspectNamespace reads what the rules depend on in the namespace (empty: this process's own): whether it
// has IPv6, and, when DNS capture needs them, the nameservers: the group's dns block's when it has one (Nomad
// writes those into the tasks' resolv.conf), else the host's resolv.conf.
func inspectNamespace(netns string, spec rules.Spec, dnsServers []string) (interceptionInputs, error) {
	conf := dnsResolvConf(spec)
	fromBlock := conf != "" && len(dnsServers) > 0
	if fromBlock {
		conf = ""
	}
	env, err := netfilter.DiscoverEnv(netns, conf)
	if err != nil {
		return interceptionInputs{}, fmt.Errorf("inspecting the network namespace: %w", err)
	}
	in := inputs(spec, env)
	if fromBlock {
		in.Nameservers = slices.Clone(dnsServers)
	}
	return in, nil
}

func dnsResolvConf(spec rules.Spec) string {
	if spec.DNSCapture && !spec.CaptureAllDNS {
		return resolvConf
	}
	return ""
}

func inputs(spec rules.Spec, env rules.Env) interceptionInputs {
	in := interceptionInputs{Spec: spec, HasIPv6: env.HasIPv6}
	for _, ns := range env.Nameservers {
		in.Nameservers = append(in.Nameservers, ns.String())
	}
	return in
}

// ruleset parses and builds; errors name the jobspec key and value. A recovered task rebuilds its ruleset
// from its persisted inputs with the same call.
func (in interceptionInputs) ruleset(s *settings, allocID string) (rules.Ruleset, error) {
	env := rules.Env{HasIPv6: in.HasIPv6, GroupIDs: in.GroupIDs}
	for _, ns := range in.Nameservers {
		a, err := netip.ParseAddr(ns)
		if err != nil {
			return rules.Ruleset{}, fmt.Errorf("nameserver %q: %w", ns, err)
		}
		env.Nameservers = append(env.Nameservers, a)
	}
	cfg, err := rules.Parse(in.Spec, s.ruleDefaults(), env)
	if err != nil {
		return rules.Ruleset{}, err
	}
	return rules.Build(cfg, rules.Owner{AllocID: allocID})
}

// ruleDefaults are Istio's, with the plugin's proxy user first and then the extra IDs, in the order of
// Istio's -u and -g lists.
func (s *settings) ruleDefaults() rules.Defaults {
	def := rules.StandardDefaults()
	def.ProxyUIDs = proxyIDs(s.ProxyUID, s.ExtraProxyUIDs)
	def.ProxyGIDs = proxyIDs(s.ProxyGID, s.ExtraProxyGIDs)
	return def
}

func proxyIDs(own int, extra []int) []uint32 {
	ids := []uint32{uint32(own)}
	for _, id := range extra {
		ids = append(ids, uint32(id))
	}
	return ids
}

// checkHostModePorts refuses a host-mode sidecar whose group did not reserve the capture ports as static
// ports: that reservation is what makes the scheduler place at most one host-mode meshed group per node.
func checkHostModePorts(cfg *drivers.TaskConfig, ports ...uint16) error {
	reserved := map[int]bool{}
	if r := cfg.Resources; r != nil && r.Ports != nil {
		for _, p := range *r.Ports {
			reserved[p.Value] = true
		}
	}
	var missing []string
	for _, p := range ports {
		if !reserved[int(p)] {
			missing = append(missing, strconv.Itoa(int(p)))
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("host network mode: the group must reserve the proxy's capture ports as static ports "+
		"(missing %v), so that the scheduler never places two meshed groups on one host: add to the group's "+
		"network block port \"istio-outbound\" { static = 15001 } and port \"istio-inbound\" { static = 15006 }", missing)
}
