package driver

import (
	"context"
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
// able to send the host's SSH or Nomad RPC to a proxy that may be down.
func withHostSafety(spec rules.Spec, ports []string) (rules.Spec, error) {
	spec.ExcludeOutboundPorts = append(slices.Clone(spec.ExcludeOutboundPorts), ports...)
	if spec.IncludeInboundPorts == nil || slices.Equal(spec.IncludeInboundPorts, []string{"*"}) {
		spec.ExcludeInboundPorts = append(slices.Clone(spec.ExcludeInboundPorts), ports...)
		return spec, nil
	}
	for i, p := range spec.IncludeInboundPorts {
		if slices.Contains(ports, p) {
			return spec, fmt.Errorf("include_inbound_ports[%d]: %q is one of the host's own ports (host_exclude_ports), never captured in host mode", i, p)
		}
	}
	return spec, nil
}

// interceptionFor decides the task's interception inputs: merged settings and what the namespace holds.
func (d *Driver) interceptionFor(cfg *drivers.TaskConfig, tc TaskConfig) (interceptionInputs, error) {
	spec, err := d.interceptionSpec(tc, isHostMode(cfg))
	if err != nil {
		return interceptionInputs{}, err
	}
	var servers []string
	if cfg.DNS != nil {
		servers = cfg.DNS.Servers
	}
	return inspectNamespace(netnsOf(cfg), spec, servers)
}

// interceptionSpec is the fleet's settings under the job's, plus the host-safety ports in host mode.
func (d *Driver) interceptionSpec(tc TaskConfig, host bool) (rules.Spec, error) {
	spec := mergeSpec(d.settings.Interception, tc.Spec)
	if !host {
		return spec, nil
	}
	if isTProxy(spec) {
		// TPROXY's Envoy holds CAP_NET_RAW, whose raw sockets and marks act on the namespace they are opened in:
		// the allocation's own in a group, the host's in host mode.
		return spec, fmt.Errorf("interception_mode: %q is for bridge and CNI networking only; host mode uses \"REDIRECT\"", spec.InterceptionMode)
	}
	return withHostSafety(spec, d.settings.HostExcludePorts)
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

// ruleset parses and builds; errors name the jobspec key and value.
func (d *Driver) ruleset(allocID string, in interceptionInputs) (rules.Ruleset, error) {
	env := rules.Env{HasIPv6: in.HasIPv6}
	for _, s := range in.Nameservers {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return rules.Ruleset{}, fmt.Errorf("nameserver %q: %w", s, err)
		}
		env.Nameservers = append(env.Nameservers, a)
	}
	cfg, err := rules.Parse(in.Spec, d.ruleDefaults(), env)
	if err != nil {
		return rules.Ruleset{}, err
	}
	return rules.Build(cfg, rules.Owner{AllocID: allocID})
}

func (d *Driver) ruleDefaults() rules.Defaults {
	def := rules.StandardDefaults()
	def.ProxyUIDs = []uint32{uint32(d.settings.ProxyUID)}
	def.ProxyGIDs = []uint32{uint32(d.settings.ProxyGID)}
	return def
}

// applyRules installs the ruleset and reports each family as a task event. found says whether the allocation's
// rules were already there (a restart within the grace period).
func (d *Driver) applyRules(ctx context.Context, cfg *drivers.TaskConfig, rs rules.Ruleset) (found bool, err error) {
	reports, err := netfilter.Apply(ctx, netnsOf(cfg), rs)
	if err != nil {
		return false, fmt.Errorf("installing the interception rules: %w", err)
	}
	for _, r := range reports {
		d.emit(cfg, "%s", r.String())
		found = found || r.Found
	}
	return found, nil
}

func netnsOf(cfg *drivers.TaskConfig) string {
	if cfg.NetworkIsolation != nil {
		return cfg.NetworkIsolation.Path
	}
	return ""
}

func isHostMode(cfg *drivers.TaskConfig) bool { return netnsOf(cfg) == "" }

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
