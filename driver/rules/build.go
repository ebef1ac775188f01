package rules

import (
	"net/netip"
	"sort"
)

// dnsPort is the DNS port applications use.
const dnsPort uint16 = 53

// Ruleset is the complete set of rules for one allocation, per IP family.
type Ruleset struct {
	Owner    Owner
	Families []FamilyRules
}

// FamilyRules is one family's part of a ruleset: its tables, in payload order, and the owner whose tag its
// rules carry. The edge works family by family, so each payload and comparison is a method of this value.
type FamilyRules struct {
	Family Family
	tables []tableRules
	owner  Owner
}

// tableRules holds one table's chains to declare and rules to append, both in iptables-save order.
type tableRules struct {
	Table  table
	Chains []chain // our chains, sorted by name as iptables-save lists them
	Rules  []rule  // grouped by chain: built-in chains first, then ours by name
}

// Family returns the rules of family f, if the ruleset has that family.
func (rs Ruleset) Family(f Family) (FamilyRules, bool) {
	for _, fr := range rs.Families {
		if fr.Family == f {
			return fr, true
		}
	}
	return FamilyRules{}, false
}

// RuleCount is the number of rules the family's payload appends.
func (fr FamilyRules) RuleCount() int {
	n := 0
	for _, t := range fr.tables {
		n += len(t.Rules)
	}
	return n
}

// Build turns a checked config into the ruleset Istio's istio-iptables would install for the same settings:
// same chains, rules, order and ports. IPv4 always; IPv6 when cfg.IPv6.
func Build(cfg Config, owner Owner) (Ruleset, error) {
	if err := owner.Validate(); err != nil {
		return Ruleset{}, err
	}
	rs := Ruleset{Owner: owner}
	fams := []Family{IPv4}
	if cfg.ipv6 {
		fams = append(fams, IPv6)
	}
	for _, f := range fams {
		b := newBuilder(f, cfg)
		b.build()
		fr := b.finish()
		fr.owner = owner
		rs.Families = append(rs.Families, fr)
	}
	return rs, nil
}

// builder accumulates rules per table and chain in Istio's order of AppendRule/InsertRule calls.
type builder struct {
	f        Family
	cfg      Config
	chains   map[table]map[chain][]rule
	loopback netip.Prefix // the host loopback destination: 127.0.0.1/32 or ::1/128
	passthru netip.Prefix // the inbound passthrough source: 127.0.0.6/32 or ::6/128
	anyAddr  netip.Addr   // TPROXY --on-ip
}

func newBuilder(f Family, cfg Config) *builder {
	b := &builder{f: f, cfg: cfg, chains: map[table]map[chain][]rule{}}
	if f == IPv4 {
		b.loopback, b.passthru, b.anyAddr = cfg.hostLoopback, netip.MustParsePrefix("127.0.0.6/32"), netip.IPv4Unspecified()
	} else {
		b.loopback, b.passthru, b.anyAddr = netip.MustParsePrefix("::1/128"), netip.MustParsePrefix("::6/128"), netip.IPv6Unspecified()
	}
	return b
}

func (b *builder) add(t table, r rule) {
	if b.chains[t] == nil {
		b.chains[t] = map[chain][]rule{}
	}
	b.chains[t][r.Chain] = append(b.chains[t][r.Chain], r)
}

// insert places r at 1-based position pos of its chain, as iptables -I does.
func (b *builder) insert(t table, pos int, r rule) {
	b.add(t, r)
	rs := b.chains[t][r.Chain]
	copy(rs[pos:], rs[pos-1:len(rs)-1])
	rs[pos-1] = r
}

// prefixes keeps the prefixes of the builder's family.
func (b *builder) prefixes(ps []netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range ps {
		if p.Addr().Is4() == (b.f == IPv4) {
			out = append(out, p)
		}
	}
	return out
}

func (b *builder) nameservers() []netip.Prefix {
	var out []netip.Prefix
	for _, a := range b.cfg.nameservers {
		if a.Is4() == (b.f == IPv4) {
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	return out
}

func (b *builder) build() {
	c := b.cfg
	b.excludeInterfaces()
	if c.dropInvalid {
		b.add(tableMangle, rule{Chain: chainPrerouting, Matches: []match{conntrackMatch{ctInvalid}}, Target: jump{chainIstioDrop}})
		b.add(tableMangle, rule{Chain: chainIstioDrop, Target: dropVerdict})
	}
	b.add(tableNat, rule{Chain: chainIstioInbound, Proto: tcp, Matches: dport(tcp, c.tunnelPort), Target: returnVerdict})
	b.add(tableNat, rule{Chain: chainIstioRedirect, Proto: tcp, Target: redirect{c.proxyPort}})
	b.add(tableNat, rule{Chain: chainIstioInRedirect, Proto: tcp, Target: redirect{c.inboundPort}})
	b.inbound()
	b.add(tableNat, rule{Chain: chainOutput, Target: jump{chainIstioOutput}})
	for _, p := range c.outPortsExclude {
		b.add(tableNat, rule{Chain: chainIstioOutput, Proto: tcp, Matches: dport(tcp, p), Target: returnVerdict})
		b.add(tableNat, rule{Chain: chainIstioOutput, Proto: udp, Matches: dport(udp, p), Target: returnVerdict})
	}
	b.add(tableNat, rule{Chain: chainIstioOutput, Src: addrMatch{Prefix: b.passthru}, Out: "lo", Target: returnVerdict})
	b.proxyOwners()
	b.ownerGroups()
	if c.dns {
		b.dns()
	}
	b.outbound()
	if c.mode == ModeTProxy {
		b.tproxyMarks()
	}
}

func (b *builder) excludeInterfaces() {
	tables := []table{tableNat}
	if b.cfg.mode == ModeTProxy {
		tables = append(tables, tableMangle)
	}
	for _, t := range tables {
		for _, i := range b.cfg.excludeIfaces {
			b.add(t, rule{Chain: chainPrerouting, In: i, Target: returnVerdict})
			b.add(t, rule{Chain: chainOutput, Out: i, Target: returnVerdict})
		}
	}
}

// inbound captures inbound TCP: all ports but the excluded ones, or only the listed ones.
func (b *builder) inbound() {
	c := b.cfg
	if !c.inboundAll && len(c.inboundPorts) == 0 {
		return
	}
	t := tableNat
	if c.mode == ModeTProxy {
		t = tableMangle
		b.add(t, rule{Chain: chainIstioDivert, Target: setMark{c.tproxyMark}})
		b.add(t, rule{Chain: chainIstioDivert, Target: acceptVerdict})
		b.add(t, rule{Chain: chainIstioTProxy, Dst: addrMatch{Prefix: b.loopback, Negate: true}, Proto: tcp,
			Target: tproxy{Port: c.inboundPort, OnIP: b.anyAddr, Mark: c.tproxyMark}})
	}
	b.add(t, rule{Chain: chainPrerouting, Proto: tcp, Target: jump{chainIstioInbound}})
	if c.inboundAll {
		for _, p := range c.inboundExclude {
			b.add(t, rule{Chain: chainIstioInbound, Proto: tcp, Matches: dport(tcp, p), Target: returnVerdict})
		}
		b.inboundCapture(nil)
		return
	}
	for _, p := range c.inboundPorts {
		b.inboundCapture(dport(tcp, p))
	}
}

func (b *builder) inboundCapture(port []match) {
	if b.cfg.mode == ModeTProxy {
		est := append(append([]match(nil), port...), conntrackMatch{ctRelatedEstablished})
		b.add(tableMangle, rule{Chain: chainIstioInbound, Proto: tcp, Matches: est, Target: jump{chainIstioDivert}})
		b.add(tableMangle, rule{Chain: chainIstioInbound, Proto: tcp, Matches: port, Target: jump{chainIstioTProxy}})
		return
	}
	b.add(tableNat, rule{Chain: chainIstioInbound, Proto: tcp, Matches: port, Target: jump{chainIstioInRedirect}})
}

// proxyOwners keeps the proxy's own traffic out of capture, except its loopback calls back into the app.
func (b *builder) proxyOwners() {
	c := b.cfg
	keepLoopback := b.includesLoopback()
	for _, owner := range b.proxyIDs() {
		// Istio skips port 53 with multiport for UIDs only, never for GIDs: kept identical on purpose.
		notTunnel := []match{portMatch{Proto: tcp, Negate: true, Port: c.tunnelPort}}
		if c.dns && !owner.GID {
			notTunnel = []match{multiportMatch{Negate: true, Ports: []uint16{dnsPort, c.tunnelPort}}}
		}
		b.add(tableNat, rule{Chain: chainIstioOutput, Dst: addrMatch{Prefix: b.loopback, Negate: true}, Out: "lo",
			Proto: tcp, Matches: append(notTunnel, owner), Target: jump{chainIstioInRedirect}})
		if !keepLoopback {
			notOwner := owner
			notOwner.Negate = true
			r := rule{Chain: chainIstioOutput, Out: "lo", Matches: []match{notOwner}, Target: returnVerdict}
			if c.dns {
				r.Proto = tcp
				r.Matches = append([]match{portMatch{Proto: tcp, Negate: true, Port: dnsPort}}, r.Matches...)
			}
			b.add(tableNat, r)
		}
		b.add(tableNat, rule{Chain: chainIstioOutput, Matches: []match{owner}, Target: returnVerdict})
	}
}

// proxyIDs are owner matches for the proxy's UIDs, then its GIDs: the order Istio writes them in.
func (b *builder) proxyIDs() []ownerMatch {
	var out []ownerMatch
	for _, id := range b.cfg.proxyUIDs {
		out = append(out, ownerMatch{ID: id})
	}
	for _, id := range b.cfg.proxyGIDs {
		out = append(out, ownerMatch{GID: true, ID: id})
	}
	return out
}

// includesLoopback mirrors Istio's HasLoopBackIP: an explicit loopback include disables the app-to-self RETURN.
func (b *builder) includesLoopback() bool {
	for _, p := range b.cfg.outboundInclude {
		if p.Addr().IsLoopback() {
			return true
		}
	}
	return false
}

func (b *builder) outbound() {
	c := b.cfg
	b.add(tableNat, rule{Chain: chainIstioOutput, Dst: addrMatch{Prefix: b.loopback}, Target: returnVerdict})
	for _, p := range b.prefixes(c.outboundExclude) {
		b.add(tableNat, rule{Chain: chainIstioOutput, Dst: addrMatch{Prefix: p}, Target: returnVerdict})
	}
	for _, p := range c.outPortsInclude {
		b.add(tableNat, rule{Chain: chainIstioOutput, Proto: tcp, Matches: dport(tcp, p), Target: jump{chainIstioRedirect}})
	}
	if c.outboundAll {
		b.add(tableNat, rule{Chain: chainIstioOutput, Target: jump{chainIstioRedirect}})
		return
	}
	for _, p := range b.prefixes(c.outboundInclude) {
		b.add(tableNat, rule{Chain: chainIstioOutput, Dst: addrMatch{Prefix: p}, Target: jump{chainIstioRedirect}})
	}
}

func dport(p proto, port uint16) []match { return []match{portMatch{Proto: p, Port: port}} }

// finish orders each table's rules as iptables-save lists them and declares every chain we append to or jump to.
func (b *builder) finish() FamilyRules {
	fr := FamilyRules{Family: b.f}
	for _, t := range tableOrder {
		chains := b.chains[t]
		if len(chains) == 0 {
			continue
		}
		tr := tableRules{Table: t}
		declared := map[chain]bool{}
		for ch, rs := range chains {
			if isOwnChain(ch) {
				declared[ch] = true
			}
			for _, r := range rs {
				if j, ok := r.Target.(jump); ok {
					declared[j.To] = true
				}
			}
		}
		for ch := range declared {
			tr.Chains = append(tr.Chains, ch)
		}
		sort.Slice(tr.Chains, func(i, j int) bool { return tr.Chains[i] < tr.Chains[j] })
		for _, ch := range append(append([]chain(nil), builtinOrder...), tr.Chains...) {
			tr.Rules = append(tr.Rules, chains[ch]...)
		}
		fr.tables = append(fr.tables, tr)
	}
	return fr
}
