package rules

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Family is an IP family; each family gets its own iptables-restore transaction.
type Family uint8

const (
	IPv4 Family = 4
	IPv6 Family = 6
)

func (f Family) String() string {
	switch f {
	case IPv4:
		return "IPv4"
	case IPv6:
		return "IPv6"
	}
	return "IPv" + strconv.Itoa(int(f))
}

// table is a netfilter table the driver writes to.
type table string

const (
	tableMangle table = "mangle"
	tableNat    table = "nat"
	tableRaw    table = "raw"
)

// tableOrder is the order tables appear in a payload (Istio's: sorted by name).
var tableOrder = []table{tableMangle, tableNat, tableRaw}

// chain is an iptables chain name.
type chain string

// Built-in chains the driver adds entry rules to.
const (
	chainPrerouting chain = "PREROUTING"
	chainOutput     chain = "OUTPUT"
)

// The chains the driver owns; names and roles match Istio's istio-iptables.
const (
	chainIstioInbound    chain = "ISTIO_INBOUND"
	chainIstioInRedirect chain = "ISTIO_IN_REDIRECT"
	chainIstioOutput     chain = "ISTIO_OUTPUT"
	chainIstioRedirect   chain = "ISTIO_REDIRECT"
	chainIstioOutputDNS  chain = "ISTIO_OUTPUT_DNS"
	chainIstioDivert     chain = "ISTIO_DIVERT"
	chainIstioTProxy     chain = "ISTIO_TPROXY"
	chainIstioDrop       chain = "ISTIO_DROP"
)

// ownChains lists every chain the driver may create. A chain outside this set is never declared, flushed or
// deleted by a payload.
var ownChains = []chain{
	chainIstioDivert, chainIstioDrop, chainIstioInbound, chainIstioInRedirect, chainIstioOutput, chainIstioOutputDNS, chainIstioRedirect, chainIstioTProxy,
}

// isOwnChain reports whether c is one of the driver's chains.
func isOwnChain(c chain) bool {
	for _, o := range ownChains {
		if o == c {
			return true
		}
	}
	return false
}

// builtinOrder is the order iptables-save lists built-in chains; rules are rendered grouped by chain in the same
// order so that a payload's -A lines read exactly like iptables-save output.
var builtinOrder = []chain{chainPrerouting, "INPUT", "FORWARD", chainOutput, "POSTROUTING"}

// proto is a layer-4 protocol match.
type proto string

const (
	tcp proto = "tcp"
	udp proto = "udp"
)

// iface is a validated interface name (see Parse).
type iface string

// addrMatch matches a source or destination prefix; the zero value matches everything.
type addrMatch struct {
	Prefix netip.Prefix
	Negate bool
}

// rule is one iptables rule in canonical iptables-save field order: addresses, interfaces, protocol, extension
// matches, comment, target. Keeping that order lets Verify compare saved rules with ours byte for byte.
type rule struct {
	Chain    chain
	Src, Dst addrMatch
	In, Out  iface
	Proto    proto
	Matches  []match
	Target   target
}

// match is an extension match (-m ...). The set is closed: only this package's types implement it.
type match interface{ matchArgs() []string }

// target is a rule's -j part. The set is closed: only this package's types implement it.
type target interface{ targetArgs() []string }

// portMatch is -m tcp|udp [!] --dport|--sport N.
type portMatch struct {
	Proto  proto
	Source bool // --sport instead of --dport
	Negate bool
	Port   uint16
}

func (m portMatch) matchArgs() []string {
	flag := "--dport"
	if m.Source {
		flag = "--sport"
	}
	return append([]string{"-m", string(m.Proto)}, negated(m.Negate, flag, itoa(m.Port))...)
}

// multiportMatch is -m multiport [!] --dports a,b.
type multiportMatch struct {
	Negate bool
	Ports  []uint16
}

func (m multiportMatch) matchArgs() []string {
	ps := make([]string, len(m.Ports))
	for i, p := range m.Ports {
		ps[i] = itoa(p)
	}
	return append([]string{"-m", "multiport"}, negated(m.Negate, "--dports", strings.Join(ps, ","))...)
}

// ownerMatch is -m owner [!] --uid-owner|--gid-owner N.
type ownerMatch struct {
	GID    bool
	Negate bool
	ID     uint32
}

func (m ownerMatch) matchArgs() []string {
	flag := "--uid-owner"
	if m.GID {
		flag = "--gid-owner"
	}
	return append([]string{"-m", "owner"}, negated(m.Negate, flag, strconv.FormatUint(uint64(m.ID), 10))...)
}

// ctState is a conntrack state list as iptables-save prints it.
type ctState string

const (
	ctInvalid            ctState = "INVALID"
	ctRelatedEstablished ctState = "RELATED,ESTABLISHED"
)

// conntrackMatch is -m conntrack --ctstate S.
type conntrackMatch struct{ State ctState }

func (m conntrackMatch) matchArgs() []string {
	return []string{"-m", "conntrack", "--ctstate", string(m.State)}
}

// markMatch is -m mark|connmark [!] --mark 0xN.
type markMatch struct {
	Conn   bool // connmark instead of mark
	Negate bool
	Mark   uint32
}

func (m markMatch) matchArgs() []string {
	mod := "mark"
	if m.Conn {
		mod = "connmark"
	}
	return append([]string{"-m", mod}, negated(m.Negate, "--mark", hex(m.Mark))...)
}

// verdict is a built-in target without options.
type verdict string

const (
	returnVerdict verdict = "RETURN"
	acceptVerdict verdict = "ACCEPT"
	dropVerdict   verdict = "DROP"
)

func (v verdict) targetArgs() []string { return []string{"-j", string(v)} }

// jump is -j CHAIN to one of our chains.
type jump struct{ To chain }

func (j jump) targetArgs() []string { return []string{"-j", string(j.To)} }

// redirect is -j REDIRECT --to-ports N.
type redirect struct{ Port uint16 }

func (r redirect) targetArgs() []string {
	return []string{"-j", "REDIRECT", "--to-ports", itoa(r.Port)}
}

// tproxy is -j TPROXY in the form iptables-save prints it.
type tproxy struct {
	Port uint16
	OnIP netip.Addr
	Mark uint32
}

func (t tproxy) targetArgs() []string {
	return []string{"-j", "TPROXY", "--on-port", itoa(t.Port), "--on-ip", t.OnIP.String(),
		"--tproxy-mark", hex(t.Mark) + "/0xffffffff"}
}

// setMark is -j MARK --set-xmark 0xN/0xffffffff (the saved form of --set-mark N).
type setMark struct{ Mark uint32 }

func (s setMark) targetArgs() []string {
	return []string{"-j", "MARK", "--set-xmark", hex(s.Mark) + "/0xffffffff"}
}

// connmark is -j CONNMARK --save-mark or --restore-mark with full masks.
type connmark struct{ Restore bool }

func (c connmark) targetArgs() []string {
	op := "--save-mark"
	if c.Restore {
		op = "--restore-mark"
	}
	return []string{"-j", "CONNMARK", op, "--nfmask", "0xffffffff", "--ctmask", "0xffffffff"}
}

// ctZone is -j CT --zone N (DNS conntrack zone separation).
type ctZone struct{ Zone uint16 }

func (c ctZone) targetArgs() []string { return []string{"-j", "CT", "--zone", itoa(c.Zone)} }

// spec renders the rule after "-A CHAIN", with comment as the last match; comment must already be safe.
func (r rule) spec(comment string) string {
	var a []string
	if r.Src.Prefix.IsValid() {
		a = append(a, negated(r.Src.Negate, "-s", r.Src.Prefix.String())...)
	}
	if r.Dst.Prefix.IsValid() {
		a = append(a, negated(r.Dst.Negate, "-d", r.Dst.Prefix.String())...)
	}
	if r.In != "" {
		a = append(a, "-i", string(r.In))
	}
	if r.Out != "" {
		a = append(a, "-o", string(r.Out))
	}
	if r.Proto != "" {
		a = append(a, "-p", string(r.Proto))
	}
	for _, m := range r.Matches {
		a = append(a, m.matchArgs()...)
	}
	if comment != "" {
		a = append(a, "-m", "comment", "--comment", `"`+comment+`"`)
	}
	a = append(a, r.Target.targetArgs()...)
	return strings.Join(a, " ")
}

// line renders the rule as an iptables-save "-A" line carrying comment.
func (r rule) line(comment string) string {
	return fmt.Sprintf("-A %s %s", r.Chain, r.spec(comment))
}

func negated(neg bool, flag, value string) []string {
	if neg {
		return []string{"!", flag, value}
	}
	return []string{flag, value}
}

func itoa(p uint16) string { return strconv.FormatUint(uint64(p), 10) }

func hex(v uint32) string { return "0x" + strconv.FormatUint(uint64(v), 16) }
