package rules

import "github.com/istio-sidecar/istio-sidecar/driver/istio"

// dns sends the app's DNS to pilot-agent's DNS proxy and splits DNS conntrack into two zones (Istio's
// SetupDNSRedir): zone 1 for the proxy's upstream queries, zone 2 for the app's queries to the proxy, so the
// two UDP flows sharing addresses and ports never collide in conntrack.
func (b *builder) dns() {
	c := b.cfg
	servers := b.nameservers()
	b.add(tableRaw, rule{Chain: chainOutput, Target: jump{chainIstioOutputDNS}})
	if c.dnsAll || len(servers) > 0 {
		b.add(tableNat, rule{Chain: chainIstioOutput, Target: jump{chainIstioOutputDNS}})
	}
	for _, proto := range []proto{tcp, udp} {
		if c.dnsAll {
			b.add(tableNat, rule{Chain: chainIstioOutputDNS, Proto: proto, Matches: dport(proto, dnsPort), Target: redirect{c.dnsPort}})
			continue
		}
		for _, s := range servers {
			b.add(tableNat, rule{Chain: chainIstioOutputDNS, Dst: addrMatch{Prefix: s}, Proto: proto,
				Matches: dport(proto, dnsPort), Target: redirect{c.dnsPort}})
		}
	}
	b.dnsZones()
}

func (b *builder) dnsZones() {
	c := b.cfg
	for _, owner := range b.proxyIDs() {
		b.add(tableRaw, rule{Chain: chainIstioOutputDNS, Proto: udp,
			Matches: []match{portMatch{Proto: udp, Port: dnsPort}, owner}, Target: ctZone{1}})
		b.add(tableRaw, rule{Chain: chainIstioOutputDNS, Proto: udp,
			Matches: []match{portMatch{Proto: udp, Source: true, Port: c.dnsPort}, owner}, Target: ctZone{2}})
	}
	fromDNS := []match{portMatch{Proto: udp, Source: true, Port: dnsPort}}
	if c.dnsAll {
		b.add(tableRaw, rule{Chain: chainPrerouting, Target: jump{chainIstioInbound}})
		b.add(tableRaw, rule{Chain: chainIstioOutputDNS, Proto: udp, Matches: dport(udp, dnsPort), Target: ctZone{2}})
		b.add(tableRaw, rule{Chain: chainIstioInbound, Proto: udp, Matches: fromDNS, Target: ctZone{1}})
		return
	}
	servers := b.nameservers()
	if len(servers) > 0 {
		b.add(tableRaw, rule{Chain: chainPrerouting, Target: jump{chainIstioInbound}})
	}
	for _, s := range servers {
		b.add(tableRaw, rule{Chain: chainIstioOutputDNS, Dst: addrMatch{Prefix: s}, Proto: udp,
			Matches: dport(udp, dnsPort), Target: ctZone{2}})
		b.add(tableRaw, rule{Chain: chainIstioInbound, Src: addrMatch{Prefix: s}, Proto: udp, Matches: fromDNS, Target: ctZone{1}})
	}
}

// tproxyMarks keeps TPROXY-diverted connections and Envoy's own loopback traffic from being captured again.
func (b *builder) tproxyMarks() {
	c := b.cfg
	mark := c.tproxyMark
	b.add(tableMangle, rule{Chain: chainPrerouting, Proto: tcp, Matches: []match{markMatch{Mark: mark}}, Target: connmark{}})
	b.add(tableMangle, rule{Chain: chainOutput, Out: "lo", Proto: tcp, Matches: []match{markMatch{Mark: mark}}, Target: returnVerdict})
	for _, owner := range b.proxyIDs() {
		b.add(tableMangle, rule{Chain: chainOutput, Dst: addrMatch{Prefix: b.loopback, Negate: true}, Out: "lo", Proto: tcp,
			Matches: []match{owner}, Target: setMark{istio.OutboundMark}})
	}
	b.add(tableMangle, rule{Chain: chainOutput, Proto: tcp, Matches: []match{markMatch{Conn: true, Mark: mark}}, Target: connmark{Restore: true}})
	b.insert(tableMangle, 1, rule{Chain: chainIstioInbound, Proto: tcp, Matches: []match{markMatch{Mark: mark}}, Target: returnVerdict})
	b.insert(tableMangle, 2, rule{Chain: chainIstioInbound, Src: addrMatch{Prefix: b.passthru}, In: "lo", Proto: tcp, Target: returnVerdict})
	b.insert(tableMangle, 3, rule{Chain: chainIstioInbound, In: "lo", Proto: tcp,
		Matches: []match{markMatch{Negate: true, Mark: istio.OutboundMark}}, Target: returnVerdict})
}
