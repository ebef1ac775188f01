package rules

import (
	"fmt"
	"slices"
	"strings"
)

// How replacement stays atomic and idempotent
//
// Each family is changed by one `iptables-restore --noflush` transaction: the kernel (legacy: one table blob per
// table; nf_tables: one batch) applies all of it or none. Within it:
//
//   - Our chains are declared with ":ISTIO_X - [0:0]". Under --noflush that creates the chain or flushes it if it
//     exists, so our chains' contents are replaced wholesale.
//   - Our rules in built-in chains (PREROUTING/OUTPUT jumps, exclude-interface RETURNs, TPROXY marks) cannot be
//     flushed without touching other software's rules. Restore has no "delete if present", so the edge passes what
//     iptables-save showed (Present) and the payload deletes exactly those lines with "-D" before appending the
//     new ones. A rule that vanished in between makes -D fail, which aborts the whole transaction: the edge
//     re-reads the state and retries, nothing is half-applied.
//   - Our chains that the new ruleset no longer uses are flushed first and deleted (-X) last.
//
// Cleanup is the same with an empty new ruleset, and is computed from tags alone (CleanupPayload), never from
// the config that produced the rules. Rules not carrying our tag are never named in a payload.

// Payload is the iptables-restore --noflush input that installs the family into a namespace holding none of
// our rules. It is ReplacePayload with nothing present.
func (fr FamilyRules) Payload() string {
	return fr.ReplacePayload(Present{})
}

// Payload is family f's Payload; "" when the ruleset has no such family.
func (rs Ruleset) Payload(f Family) string {
	fr, _ := rs.Family(f)
	return fr.Payload()
}

// ReplacePayload installs the family in place of what the same owner has present, in one transaction.
func (fr FamilyRules) ReplacePayload(present Present) string {
	return swapPayload(present, fr.asPresent())
}

// CleanupPayload removes everything present (one owner, one family) in one transaction; "" if nothing is.
func CleanupPayload(present Present) string {
	return swapPayload(present, Present{})
}

// RevertPayload puts back what was present before (as saved) in place of what is present now. The edge uses it
// to undo an applied family when a later family fails, so Apply stays all or nothing across families.
func RevertPayload(current, previous Present) string {
	return swapPayload(current, previous)
}

// asPresent renders the family as the Present it will be once applied.
func (fr FamilyRules) asPresent() Present {
	p := Present{chains: map[table][]chain{}}
	for _, tr := range fr.tables {
		p.chains[tr.Table] = tr.Chains
		for _, r := range tr.Rules {
			p.rules = append(p.rules, savedRule{Table: tr.Table, Chain: r.Chain, Line: r.line(fr.owner.tag()), Owner: fr.owner.AllocID})
		}
	}
	return p
}

// TProxyMark is the mark of the family's TPROXY rule, if the family diverts inbound traffic with TPROXY: the
// mark its policy routing looks up.
func (fr FamilyRules) TProxyMark() (uint32, bool) {
	for _, t := range fr.tables {
		for _, r := range t.Rules {
			if tp, ok := r.Target.(tproxy); ok {
				return tp.Mark, true
			}
		}
	}
	return 0, false
}

// swapPayload replaces old by new per table: delete old rules outside wholly-owned chains, flush stale chains,
// declare (create or flush) new chains, append new rules, delete stale chains.
func swapPayload(old, new Present) string {
	var b strings.Builder
	for _, t := range unionTables(old, new) {
		stale := minus(old.chains[t], new.chains[t])
		fmt.Fprintf(&b, "*%s\n", t)
		writeDeletes(&b, t, old)
		for _, ch := range stale {
			fmt.Fprintf(&b, "-F %s\n", ch)
		}
		for _, ch := range new.chains[t] {
			fmt.Fprintf(&b, ":%s - [0:0]\n", ch)
		}
		for _, r := range new.rules {
			if r.Table == t {
				b.WriteString(r.Line + "\n")
			}
		}
		for _, ch := range stale {
			fmt.Fprintf(&b, "-X %s\n", ch)
		}
		b.WriteString("COMMIT\n")
	}
	return b.String()
}

// writeDeletes deletes the owner's rules that sit in chains we do not flush wholesale (built-in chains, or our
// chain names holding somebody else's rules too), by their exact saved text.
func writeDeletes(b *strings.Builder, t table, present Present) {
	whole := map[chain]bool{}
	for _, ch := range present.chains[t] {
		whole[ch] = true
	}
	for _, r := range present.rules {
		if r.Table == t && !whole[r.Chain] && strings.HasPrefix(r.Line, "-A ") {
			b.WriteString("-D " + r.Line[3:] + "\n")
		}
	}
}

// unionTables lists the tables either side touches, in payload order; a table we never write (but that holds a
// tagged rule) comes last so that cleanup by tag still reaches it.
func unionTables(a, b Present) []table {
	used := map[table]bool{}
	for _, p := range []Present{a, b} {
		for _, r := range p.rules {
			used[r.Table] = true
		}
		for t, chs := range p.chains {
			if len(chs) > 0 {
				used[t] = true
			}
		}
	}
	var out []table
	for _, t := range tableOrder {
		if used[t] {
			out = append(out, t)
			delete(used, t)
		}
	}
	var extra []table
	for t := range used {
		extra = append(extra, t)
	}
	slices.Sort(extra)
	return append(out, extra...)
}

func minus(a, b []chain) []chain {
	var out []chain
	for _, x := range a {
		found := false
		for _, y := range b {
			found = found || x == y
		}
		if !found {
			out = append(out, x)
		}
	}
	return out
}

// lines is the family's rules as iptables-save prints them, per table and chain: what Verify expects to find.
func (fr FamilyRules) lines() map[table]map[chain][]string {
	out := map[table]map[chain][]string{}
	for _, tr := range fr.tables {
		out[tr.Table] = map[chain][]string{}
		for _, r := range tr.Rules {
			out[tr.Table][r.Chain] = append(out[tr.Table][r.Chain], r.line(fr.owner.tag()))
		}
	}
	return out
}

// Diff compares the family's rules with what the owner has present and describes each difference; none means
// the namespace holds exactly these rules. Order matters within a chain; foreign rules are ignored.
func (fr FamilyRules) Diff(present Present) []string {
	f := fr.Family
	want := fr.lines()
	have := map[table]map[chain][]string{}
	for _, r := range present.rules {
		if have[r.Table] == nil {
			have[r.Table] = map[chain][]string{}
		}
		have[r.Table][r.Chain] = append(have[r.Table][r.Chain], r.Line)
	}
	var diffs []string
	for _, t := range unionTables(present, Present{}) {
		if _, ok := want[t]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s %s: unexpected table with our rules", f, t))
		}
	}
	for t, chains := range want {
		for ch, lines := range chains {
			diffs = append(diffs, diffChain(fmt.Sprintf("%s %s/%s", f, t, ch), lines, have[t][ch])...)
		}
		for ch, lines := range have[t] {
			if _, ok := chains[ch]; !ok {
				diffs = append(diffs, fmt.Sprintf("%s %s/%s: %d unexpected rules of ours, first %q", f, t, ch, len(lines), lines[0]))
			}
		}
	}
	slices.Sort(diffs)
	return diffs
}

func diffChain(where string, want, have []string) []string {
	for i := 0; i < len(want) || i < len(have); i++ {
		switch {
		case i >= len(have):
			return []string{fmt.Sprintf("%s: missing rule %d %q", where, i+1, want[i])}
		case i >= len(want):
			return []string{fmt.Sprintf("%s: extra rule %d %q", where, i+1, have[i])}
		case want[i] != have[i]:
			return []string{fmt.Sprintf("%s: rule %d is %q, want %q", where, i+1, have[i], want[i])}
		}
	}
	return nil
}
