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

// Table is a netfilter table the driver writes to.
type Table string

const (
	TableMangle Table = "mangle"
	TableNat    Table = "nat"
	TableRaw    Table = "raw"
)

// tableOrder is the order tables appear in a payload (Istio's: sorted by name).
var tableOrder = []Table{TableMangle, TableNat, TableRaw}

// Chain is an iptables chain name.
type Chain string

// Built-in chains the driver adds entry rules to.
const (
	ChainPrerouting Chain = "PREROUTING"
	ChainOutput     Chain = "OUTPUT"
)

// The chains the driver owns; names and roles match Istio's istio-iptables.
const (
	ChainIstioInbound    Chain = "ISTIO_INBOUND"
	ChainIstioInRedirect Chain = "ISTIO_IN_REDIRECT"
	ChainIstioOutput     Chain = "ISTIO_OUTPUT"
	ChainIstioRedirect   Chain = "ISTIO_REDIRECT"
	ChainIstioOutputDNS  Chain = "ISTIO_OUTPUT_DNS"
	ChainIstioDivert     Chain = "ISTIO_DIVERT"
	ChainIstioTProxy     Chain = "ISTIO_TPROXY"
	ChainIstioDrop       Chain = "ISTIO_DROP"
)

// OwnChains lists every chain the driver may create. A chain outside this set is never declared, flushed or
// deleted by a payload.
var OwnChains = []Chain{
	ChainIstioDivert, ChainIstioDrop, ChainIstioInbound, ChainIstioInRedirect, ChainIstioOutput, ChainIstioOutputDNS, ChainIstioRedirect, ChainIstioTProxy,
}

// IsOwnChain reports whether c is one of the driver's chains.
func IsOwnChain(c Chain) bool {
	for _, o := range OwnChains {
		if o == c {
			return true
		}
	}
	return false
}

// builtinOrder is the order iptables-save lists built-in chains; rules are rendered grouped by chain in the same
// order so that a payload's -A lines read exactly like iptables-save output.
var builtinOrder = []Chain{ChainPrerouting, "INPUT", "FORWARD", ChainOutput, "POSTROUTING"}

// Proto is a layer-4 protocol match.
type Proto string

const (
	TCP Proto = "tcp"
	UDP Proto = "udp"
)

// Iface is a validated interface name (see Parse).
type Iface string

// AddrMatch matches a source or destination prefix; the zero value matches everything.
type AddrMatch struct {
	Prefix netip.Prefix
	Negate bool
}

// Rule is one iptables rule in canonical iptables-save field order: addresses, interfaces, protocol, extension
// matches, comment, target. Keeping that order lets Verify compare saved rules with ours byte for byte.
type Rule struct {
	Chain    Chain
	Src, Dst AddrMatch
	In, Out  Iface
	Proto    Proto
	Matches  []Match
	Target   Target
}

// Match is an extension match (-m ...). The set is closed: only this package's types implement it.
type Match interface{ matchArgs() []string }

// Target is a rule's -j part. The set is closed: only this package's types implement it.
type Target interface{ targetArgs() []string }

// PortMatch is -m tcp|udp [!] --dport|--sport N.
type PortMatch struct {
	Proto  Proto
	Source bool // --sport instead of --dport
	Negate bool
	Port   uint16
}

func (m PortMatch) matchArgs() []string {
	flag := "--dport"
	if m.Source {
		flag = "--sport"
	}
	return append([]string{"-m", string(m.Proto)}, negated(m.Negate, flag, itoa(m.Port))...)
}

// MultiportMatch is -m multiport [!] --dports a,b.
type MultiportMatch struct {
	Negate bool
	Ports  []uint16
}

func (m MultiportMatch) matchArgs() []string {
	ps := make([]string, len(m.Ports))
	for i, p := range m.Ports {
		ps[i] = itoa(p)
	}
	return append([]string{"-m", "multiport"}, negated(m.Negate, "--dports", strings.Join(ps, ","))...)
}

// OwnerMatch is -m owner [!] --uid-owner|--gid-owner N.
type OwnerMatch struct {
	GID    bool
	Negate bool
	ID     uint32
}

func (m OwnerMatch) matchArgs() []string {
	flag := "--uid-owner"
	if m.GID {
		flag = "--gid-owner"
	}
	return append([]string{"-m", "owner"}, negated(m.Negate, flag, strconv.FormatUint(uint64(m.ID), 10))...)
}

// CtState is a conntrack state list as iptables-save prints it.
type CtState string

const (
	CtInvalid            CtState = "INVALID"
	CtRelatedEstablished CtState = "RELATED,ESTABLISHED"
)

// ConntrackMatch is -m conntrack --ctstate S.
type ConntrackMatch struct{ State CtState }

func (m ConntrackMatch) matchArgs() []string {
	return []string{"-m", "conntrack", "--ctstate", string(m.State)}
}

// MarkMatch is -m mark|connmark [!] --mark 0xN.
type MarkMatch struct {
	Conn   bool // connmark instead of mark
	Negate bool
	Mark   uint32
}

func (m MarkMatch) matchArgs() []string {
	mod := "mark"
	if m.Conn {
		mod = "connmark"
	}
	return append([]string{"-m", mod}, negated(m.Negate, "--mark", hex(m.Mark))...)
}

// Verdict is a built-in target without options.
type Verdict string

const (
	Return Verdict = "RETURN"
	Accept Verdict = "ACCEPT"
	Drop   Verdict = "DROP"
)

func (v Verdict) targetArgs() []string { return []string{"-j", string(v)} }

// Jump is -j CHAIN to one of our chains.
type Jump struct{ To Chain }

func (j Jump) targetArgs() []string { return []string{"-j", string(j.To)} }

// Redirect is -j REDIRECT --to-ports N.
type Redirect struct{ Port uint16 }

func (r Redirect) targetArgs() []string {
	return []string{"-j", "REDIRECT", "--to-ports", itoa(r.Port)}
}

// TProxy is -j TPROXY in the form iptables-save prints it.
type TProxy struct {
	Port uint16
	OnIP netip.Addr
	Mark uint32
}

func (t TProxy) targetArgs() []string {
	return []string{"-j", "TPROXY", "--on-port", itoa(t.Port), "--on-ip", t.OnIP.String(),
		"--tproxy-mark", hex(t.Mark) + "/0xffffffff"}
}

// SetMark is -j MARK --set-xmark 0xN/0xffffffff (the saved form of --set-mark N).
type SetMark struct{ Mark uint32 }

func (s SetMark) targetArgs() []string {
	return []string{"-j", "MARK", "--set-xmark", hex(s.Mark) + "/0xffffffff"}
}

// Connmark is -j CONNMARK --save-mark or --restore-mark with full masks.
type Connmark struct{ Restore bool }

func (c Connmark) targetArgs() []string {
	op := "--save-mark"
	if c.Restore {
		op = "--restore-mark"
	}
	return []string{"-j", "CONNMARK", op, "--nfmask", "0xffffffff", "--ctmask", "0xffffffff"}
}

// CTZone is -j CT --zone N (DNS conntrack zone separation).
type CTZone struct{ Zone uint16 }

func (c CTZone) targetArgs() []string { return []string{"-j", "CT", "--zone", itoa(c.Zone)} }

// Spec renders the rule after "-A CHAIN", with comment as the last match; comment must already be safe.
func (r Rule) Spec(comment string) string {
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

// Line renders the rule as an iptables-save "-A" line carrying comment.
func (r Rule) Line(comment string) string {
	return fmt.Sprintf("-A %s %s", r.Chain, r.Spec(comment))
}

func negated(neg bool, flag, value string) []string {
	if neg {
		return []string{"!", flag, value}
	}
	return []string{flag, value}
}

func itoa(p uint16) string { return strconv.FormatUint(uint64(p), 10) }

func hex(v uint32) string { return "0x" + strconv.FormatUint(uint64(v), 16) }
