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
	Tables []TableRules
	owner  Owner
}

// TableRules holds one table's chains to declare and rules to append, both in iptables-save order.
type TableRules struct {
	Table  Table
	Chains []Chain // our chains, sorted by name as iptables-save lists them
	Rules  []Rule  // grouped by chain: built-in chains first, then ours by name
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
	for _, t := range fr.Tables {
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
	if cfg.IPv6 {
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
	chains   map[Table]map[Chain][]Rule
	loopback netip.Prefix // the host loopback destination: 127.0.0.1/32 or ::1/128
	passthru netip.Prefix // the inbound passthrough source: 127.0.0.6/32 or ::6/128
	anyAddr  netip.Addr   // TPROXY --on-ip
}

func newBuilder(f Family, cfg Config) *builder {
	b := &builder{f: f, cfg: cfg, chains: map[Table]map[Chain][]Rule{}}
	if f == IPv4 {
		b.loopback, b.passthru, b.anyAddr = cfg.HostLoopback, netip.MustParsePrefix("127.0.0.6/32"), netip.IPv4Unspecified()
	} else {
		b.loopback, b.passthru, b.anyAddr = netip.MustParsePrefix("::1/128"), netip.MustParsePrefix("::6/128"), netip.IPv6Unspecified()
	}
	return b
}

func (b *builder) add(t Table, r Rule) {
	if b.chains[t] == nil {
		b.chains[t] = map[Chain][]Rule{}
	}
	b.chains[t][r.Chain] = append(b.chains[t][r.Chain], r)
}

// insert places r at 1-based position pos of its chain, as iptables -I does.
func (b *builder) insert(t Table, pos int, r Rule) {
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
	for _, a := range b.cfg.Nameservers {
		if a.Is4() == (b.f == IPv4) {
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	return out
}

func (b *builder) build() {
	c := b.cfg
	b.excludeInterfaces()
	if c.DropInvalid {
		b.add(TableMangle, Rule{Chain: ChainPrerouting, Matches: []Match{ConntrackMatch{CtInvalid}}, Target: Jump{ChainIstioDrop}})
		b.add(TableMangle, Rule{Chain: ChainIstioDrop, Target: Drop})
	}
	b.add(TableNat, Rule{Chain: ChainIstioInbound, Proto: TCP, Matches: dport(TCP, c.TunnelPort), Target: Return})
	b.add(TableNat, Rule{Chain: ChainIstioRedirect, Proto: TCP, Target: Redirect{c.ProxyPort}})
	b.add(TableNat, Rule{Chain: ChainIstioInRedirect, Proto: TCP, Target: Redirect{c.InboundPort}})
	b.inbound()
	b.add(TableNat, Rule{Chain: ChainOutput, Target: Jump{ChainIstioOutput}})
	for _, p := range c.OutPortsExclude {
		b.add(TableNat, Rule{Chain: ChainIstioOutput, Proto: TCP, Matches: dport(TCP, p), Target: Return})
		b.add(TableNat, Rule{Chain: ChainIstioOutput, Proto: UDP, Matches: dport(UDP, p), Target: Return})
	}
	b.add(TableNat, Rule{Chain: ChainIstioOutput, Src: AddrMatch{Prefix: b.passthru}, Out: "lo", Target: Return})
	b.proxyOwners()
	if c.DNS {
		b.dns()
	}
	b.outbound()
	if c.Mode == ModeTProxy {
		b.tproxyMarks()
	}
}

func (b *builder) excludeInterfaces() {
	tables := []Table{TableNat}
	if b.cfg.Mode == ModeTProxy {
		tables = append(tables, TableMangle)
	}
	for _, t := range tables {
		for _, i := range b.cfg.ExcludeIfaces {
			b.add(t, Rule{Chain: ChainPrerouting, In: i, Target: Return})
			b.add(t, Rule{Chain: ChainOutput, Out: i, Target: Return})
		}
	}
}

// inbound captures inbound TCP: all ports but the excluded ones, or only the listed ones.
func (b *builder) inbound() {
	c := b.cfg
	if !c.InboundAll && len(c.InboundPorts) == 0 {
		return
	}
	t := TableNat
	if c.Mode == ModeTProxy {
		t = TableMangle
		b.add(t, Rule{Chain: ChainIstioDivert, Target: SetMark{c.TProxyMark}})
		b.add(t, Rule{Chain: ChainIstioDivert, Target: Accept})
		b.add(t, Rule{Chain: ChainIstioTProxy, Dst: AddrMatch{Prefix: b.loopback, Negate: true}, Proto: TCP,
			Target: TProxy{Port: c.InboundPort, OnIP: b.anyAddr, Mark: c.TProxyMark}})
	}
	b.add(t, Rule{Chain: ChainPrerouting, Proto: TCP, Target: Jump{ChainIstioInbound}})
	if c.InboundAll {
		for _, p := range c.InboundExclude {
			b.add(t, Rule{Chain: ChainIstioInbound, Proto: TCP, Matches: dport(TCP, p), Target: Return})
		}
		b.inboundCapture(nil)
		return
	}
	for _, p := range c.InboundPorts {
		b.inboundCapture(dport(TCP, p))
	}
}

func (b *builder) inboundCapture(port []Match) {
	if b.cfg.Mode == ModeTProxy {
		est := append(append([]Match(nil), port...), ConntrackMatch{CtRelatedEstablished})
		b.add(TableMangle, Rule{Chain: ChainIstioInbound, Proto: TCP, Matches: est, Target: Jump{ChainIstioDivert}})
		b.add(TableMangle, Rule{Chain: ChainIstioInbound, Proto: TCP, Matches: port, Target: Jump{ChainIstioTProxy}})
		return
	}
	b.add(TableNat, Rule{Chain: ChainIstioInbound, Proto: TCP, Matches: port, Target: Jump{ChainIstioInRedirect}})
}

// proxyOwners keeps the proxy's own traffic out of capture, except its loopback calls back into the app.
func (b *builder) proxyOwners() {
	c := b.cfg
	keepLoopback := b.includesLoopback()
	for _, owner := range b.proxyIDs() {
		// Istio skips port 53 with multiport for UIDs only, never for GIDs: kept identical on purpose.
		notTunnel := []Match{PortMatch{Proto: TCP, Negate: true, Port: c.TunnelPort}}
		if c.DNS && !owner.GID {
			notTunnel = []Match{MultiportMatch{Negate: true, Ports: []uint16{dnsPort, c.TunnelPort}}}
		}
		b.add(TableNat, Rule{Chain: ChainIstioOutput, Dst: AddrMatch{Prefix: b.loopback, Negate: true}, Out: "lo",
			Proto: TCP, Matches: append(notTunnel, owner), Target: Jump{ChainIstioInRedirect}})
		if !keepLoopback {
			notOwner := owner
			notOwner.Negate = true
			r := Rule{Chain: ChainIstioOutput, Out: "lo", Matches: []Match{notOwner}, Target: Return}
			if c.DNS {
				r.Proto = TCP
				r.Matches = append([]Match{PortMatch{Proto: TCP, Negate: true, Port: dnsPort}}, r.Matches...)
			}
			b.add(TableNat, r)
		}
		b.add(TableNat, Rule{Chain: ChainIstioOutput, Matches: []Match{owner}, Target: Return})
	}
}

// proxyIDs are owner matches for the proxy's UIDs, then its GIDs: the order Istio writes them in.
func (b *builder) proxyIDs() []OwnerMatch {
	var out []OwnerMatch
	for _, id := range b.cfg.ProxyUIDs {
		out = append(out, OwnerMatch{ID: id})
	}
	for _, id := range b.cfg.ProxyGIDs {
		out = append(out, OwnerMatch{GID: true, ID: id})
	}
	return out
}

// includesLoopback mirrors Istio's HasLoopBackIP: an explicit loopback include disables the app-to-self RETURN.
func (b *builder) includesLoopback() bool {
	for _, p := range b.cfg.OutboundInclude {
		if p.Addr().IsLoopback() {
			return true
		}
	}
	return false
}

func (b *builder) outbound() {
	c := b.cfg
	b.add(TableNat, Rule{Chain: ChainIstioOutput, Dst: AddrMatch{Prefix: b.loopback}, Target: Return})
	for _, p := range b.prefixes(c.OutboundExclude) {
		b.add(TableNat, Rule{Chain: ChainIstioOutput, Dst: AddrMatch{Prefix: p}, Target: Return})
	}
	for _, p := range c.OutPortsInclude {
		b.add(TableNat, Rule{Chain: ChainIstioOutput, Proto: TCP, Matches: dport(TCP, p), Target: Jump{ChainIstioRedirect}})
	}
	if c.OutboundAll {
		b.add(TableNat, Rule{Chain: ChainIstioOutput, Target: Jump{ChainIstioRedirect}})
		return
	}
	for _, p := range b.prefixes(c.OutboundInclude) {
		b.add(TableNat, Rule{Chain: ChainIstioOutput, Dst: AddrMatch{Prefix: p}, Target: Jump{ChainIstioRedirect}})
	}
}

func dport(p Proto, port uint16) []Match { return []Match{PortMatch{Proto: p, Port: port}} }

// finish orders each table's rules as iptables-save lists them and declares every chain we append to or jump to.
func (b *builder) finish() FamilyRules {
	fr := FamilyRules{Family: b.f}
	for _, t := range tableOrder {
		chains := b.chains[t]
		if len(chains) == 0 {
			continue
		}
		tr := TableRules{Table: t}
		declared := map[Chain]bool{}
		for ch, rs := range chains {
			if IsOwnChain(ch) {
				declared[ch] = true
			}
			for _, r := range rs {
				if j, ok := r.Target.(Jump); ok {
					declared[j.To] = true
				}
			}
		}
		for ch := range declared {
			tr.Chains = append(tr.Chains, ch)
		}
		sort.Slice(tr.Chains, func(i, j int) bool { return tr.Chains[i] < tr.Chains[j] })
		for _, ch := range append(append([]Chain(nil), builtinOrder...), tr.Chains...) {
			tr.Rules = append(tr.Rules, chains[ch]...)
		}
		fr.Tables = append(fr.Tables, tr)
	}
	return fr
}
