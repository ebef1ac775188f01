package rules

import "github.com/istio-sidecar/istio-sidecar/driver/istio"

// dns sends the app's DNS to pilot-agent's DNS proxy and splits DNS conntrack into two zones (Istio's
// SetupDNSRedir): zone 1 for the proxy's upstream queries, zone 2 for the app's queries to the proxy, so the
// two UDP flows sharing addresses and ports never collide in conntrack.
func (b *builder) dns() {
	c := b.cfg
	servers := b.nameservers()
	b.add(TableRaw, Rule{Chain: ChainOutput, Target: Jump{ChainIstioOutputDNS}})
	if c.DNSAll || len(servers) > 0 {
		b.add(TableNat, Rule{Chain: ChainIstioOutput, Target: Jump{ChainIstioOutputDNS}})
	}
	for _, proto := range []Proto{TCP, UDP} {
		if c.DNSAll {
			b.add(TableNat, Rule{Chain: ChainIstioOutputDNS, Proto: proto, Matches: dport(proto, dnsPort), Target: Redirect{c.DNSPort}})
			continue
		}
		for _, s := range servers {
			b.add(TableNat, Rule{Chain: ChainIstioOutputDNS, Dst: AddrMatch{Prefix: s}, Proto: proto,
				Matches: dport(proto, dnsPort), Target: Redirect{c.DNSPort}})
		}
	}
	b.dnsZones()
}

func (b *builder) dnsZones() {
	c := b.cfg
	for _, owner := range b.proxyIDs() {
		b.add(TableRaw, Rule{Chain: ChainIstioOutputDNS, Proto: UDP,
			Matches: []Match{PortMatch{Proto: UDP, Port: dnsPort}, owner}, Target: CTZone{1}})
		b.add(TableRaw, Rule{Chain: ChainIstioOutputDNS, Proto: UDP,
			Matches: []Match{PortMatch{Proto: UDP, Source: true, Port: c.DNSPort}, owner}, Target: CTZone{2}})
	}
	fromDNS := []Match{PortMatch{Proto: UDP, Source: true, Port: dnsPort}}
	if c.DNSAll {
		b.add(TableRaw, Rule{Chain: ChainPrerouting, Target: Jump{ChainIstioInbound}})
		b.add(TableRaw, Rule{Chain: ChainIstioOutputDNS, Proto: UDP, Matches: dport(UDP, dnsPort), Target: CTZone{2}})
		b.add(TableRaw, Rule{Chain: ChainIstioInbound, Proto: UDP, Matches: fromDNS, Target: CTZone{1}})
		return
	}
	servers := b.nameservers()
	if len(servers) > 0 {
		b.add(TableRaw, Rule{Chain: ChainPrerouting, Target: Jump{ChainIstioInbound}})
	}
	for _, s := range servers {
		b.add(TableRaw, Rule{Chain: ChainIstioOutputDNS, Dst: AddrMatch{Prefix: s}, Proto: UDP,
			Matches: dport(UDP, dnsPort), Target: CTZone{2}})
		b.add(TableRaw, Rule{Chain: ChainIstioInbound, Src: AddrMatch{Prefix: s}, Proto: UDP, Matches: fromDNS, Target: CTZone{1}})
	}
}

// tproxyMarks keeps TPROXY-diverted connections and Envoy's own loopback traffic from being captured again.
func (b *builder) tproxyMarks() {
	c := b.cfg
	mark := c.TProxyMark
	b.add(TableMangle, Rule{Chain: ChainPrerouting, Proto: TCP, Matches: []Match{MarkMatch{Mark: mark}}, Target: Connmark{}})
	b.add(TableMangle, Rule{Chain: ChainOutput, Out: "lo", Proto: TCP, Matches: []Match{MarkMatch{Mark: mark}}, Target: Return})
	for _, owner := range b.proxyIDs() {
		b.add(TableMangle, Rule{Chain: ChainOutput, Dst: AddrMatch{Prefix: b.loopback, Negate: true}, Out: "lo", Proto: TCP,
			Matches: []Match{owner}, Target: SetMark{istio.OutboundMark}})
	}
	b.add(TableMangle, Rule{Chain: ChainOutput, Proto: TCP, Matches: []Match{MarkMatch{Conn: true, Mark: mark}}, Target: Connmark{Restore: true}})
	b.insert(TableMangle, 1, Rule{Chain: ChainIstioInbound, Proto: TCP, Matches: []Match{MarkMatch{Mark: mark}}, Target: Return})
	b.insert(TableMangle, 2, Rule{Chain: ChainIstioInbound, Src: AddrMatch{Prefix: b.passthru}, In: "lo", Proto: TCP, Target: Return})
	b.insert(TableMangle, 3, Rule{Chain: ChainIstioInbound, In: "lo", Proto: TCP,
		Matches: []Match{MarkMatch{Negate: true, Mark: istio.OutboundMark}}, Target: Return})
}
