package rules

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Saved is one family's iptables-save output, parsed.
type Saved struct {
	tables []savedTable
}

// savedTable is one "*table" block of iptables-save output.
type savedTable struct {
	Table  table
	Chains []chain // every chain declared, built-in or not, in save order
	Rules  []savedRule
}

// savedRule is one "-A" line of iptables-save output, kept verbatim so that it can be deleted exactly.
type savedRule struct {
	Table table
	Chain chain
	Line  string // "-A CHAIN ..." as printed by iptables-save
	Owner string // alloc ID from our tag, or "" for a rule that is not ours
}

// commentMatch introduces a rule's comment in iptables-save output.
const commentMatch = "-m comment --comment "

// ParseSave parses iptables-save output. Unknown lines are an error: a state we do not understand is never
// edited.
func ParseSave(text string) (Saved, error) {
	var s Saved
	var cur *savedTable
	for n, line := range strings.Split(text, "\n") {
		line = strings.TrimRight(line, "\r")
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "*"):
			s.tables = append(s.tables, savedTable{Table: table(line[1:])})
			cur = &s.tables[len(s.tables)-1]
		case cur == nil:
			return Saved{}, fmt.Errorf("iptables-save line %d: %q outside a table", n+1, line)
		case line == "COMMIT":
			cur = nil
		case strings.HasPrefix(line, ":"):
			name, _, _ := strings.Cut(line[1:], " ")
			cur.Chains = append(cur.Chains, chain(name))
		case strings.HasPrefix(line, "-A "):
			name, _, _ := strings.Cut(line[3:], " ")
			cur.Rules = append(cur.Rules, savedRule{Table: cur.Table, Chain: chain(name), Line: line, Owner: tagOwner(line)})
		default:
			return Saved{}, fmt.Errorf("iptables-save line %d: unexpected %q", n+1, line)
		}
	}
	return s, nil
}

// tagOwner returns the alloc ID in our tag, or "". iptables-save quotes comments; the unquoted form is accepted
// too. The ID must end at the closing quote (or the field), so "istio-sidecar:alloc=x y" is never read as "x".
// A scanner rather than a regular expression: it runs on every saved line, and a save with a thousand excluded
// CIDRs spent most of its parse in the regexp engine.
func tagOwner(line string) string {
	for off := 0; ; {
		i := strings.Index(line[off:], commentMatch)
		if i < 0 {
			return ""
		}
		start := off + i
		off = start + 1
		if start > 0 && line[start-1] != ' ' {
			continue
		}
		if id, ok := tagAt(line[start+len(commentMatch):]); ok {
			return id
		}
	}
}

// tagAt reads our tag at the start of a comment's value, as it must end: quoted, or up to a space or the end.
func tagAt(v string) (string, bool) {
	quoted := strings.HasPrefix(v, `"`)
	if quoted {
		v = v[1:]
	}
	v, ok := strings.CutPrefix(v, TagPrefix)
	if !ok {
		return "", false
	}
	n := 0
	for n < len(v) && isIDByte(v[n]) {
		n++
	}
	id, rest := v[:n], v[n:]
	if quoted {
		if !strings.HasPrefix(rest, `"`) {
			return "", false
		}
		rest = rest[1:]
	}
	if n == 0 || rest != "" && rest[0] != ' ' {
		return "", false
	}
	return id, true
}

func isIDByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-'
}

// Owners lists the alloc IDs that own rules in this state, sorted.
func (s Saved) Owners() []string {
	seen := map[string]bool{}
	var out []string
	for _, t := range s.tables {
		for _, r := range t.Rules {
			if r.Owner != "" && !seen[r.Owner] {
				seen[r.Owner] = true
				out = append(out, r.Owner)
			}
		}
	}
	sort.Strings(out)
	return out
}

// Present is what one owner has in one family: its tagged rules and the chains it alone fills.
type Present struct {
	rules  []savedRule
	chains map[table][]chain // our chains holding at least one rule, all of them the owner's
}

// Empty reports whether the owner has nothing here.
func (p Present) Empty() bool { return len(p.rules) == 0 }

// RuleCount is how many of the owner's rules are here.
func (p Present) RuleCount() int { return len(p.rules) }

// RuleCounts is how many rules each owner has here.
func (p Present) RuleCounts() map[string]int {
	out := map[string]int{}
	for _, r := range p.rules {
		out[r.Owner]++
	}
	return out
}

var tproxyMarkPattern = regexp.MustCompile(` -j TPROXY .*--tproxy-mark (0x[0-9a-f]+)(?:/0xffffffff)?(?: |$)`)

// TProxyMarks are the --tproxy-mark values of the owner's TPROXY rules here, as iptables-save shows them:
// the marks whose policy routing the owner added.
func (p Present) TProxyMarks() []uint32 {
	var out []uint32
	for _, r := range p.rules {
		m := tproxyMarkPattern.FindStringSubmatch(r.Line)
		if m == nil {
			continue
		}
		v, err := strconv.ParseUint(m[1], 0, 32)
		if err != nil || slices.Contains(out, uint32(v)) {
			continue
		}
		out = append(out, uint32(v))
	}
	return out
}

// Present extracts what owner has in this state. The zero Owner is every owner: all our tagged rules, and
// the chains they alone fill, which is what a cleanup of a namespace that two writers left with two owners
// needs to remove in one transaction (chains of one owner referenced by the other's jumps cannot go alone).
func (s Saved) Present(owner Owner) Present {
	p := Present{chains: map[table][]chain{}}
	for _, t := range s.tables {
		count, mine := map[chain]int{}, map[chain]int{}
		for _, r := range t.Rules {
			count[r.Chain]++
			if r.Owner != "" && (owner.AllocID == "" || r.Owner == owner.AllocID) {
				mine[r.Chain]++
				p.rules = append(p.rules, r)
			}
		}
		for _, ch := range t.Chains {
			if isOwnChain(ch) && mine[ch] > 0 && mine[ch] == count[ch] {
				p.chains[t.Table] = append(p.chains[t.Table], ch)
			}
		}
	}
	return p
}

// ErrOtherOwner means the namespace already holds another allocation's rules. Chain names are Istio's and thus
// shared, so one namespace can hold one owner's ruleset only.
var ErrOtherOwner = errors.New("namespace already has interception rules of another allocation")

// ErrForeignRules means our chains hold rules we did not write (e.g. Istio's own istio-iptables ran here).
var ErrForeignRules = errors.New("namespace has ISTIO_* rules not written by istio-sidecar")

// CheckOwner returns an error if anything but owner's rules lives in, or jumps to, our chains.
func (s Saved) CheckOwner(owner Owner) error {
	for _, t := range s.tables {
		for _, r := range t.Rules {
			switch {
			case r.Owner == owner.AllocID:
			case r.Owner != "":
				return fmt.Errorf("%w: alloc %q (%s table, chain %s)", ErrOtherOwner, r.Owner, t.Table, r.Chain)
			case isOwnChain(r.Chain) || jumpsToOwnChain(r.Line):
				return fmt.Errorf("%w: %s table: %q", ErrForeignRules, t.Table, r.Line)
			}
		}
	}
	return nil
}

func jumpsToOwnChain(line string) bool {
	f := strings.Fields(line)
	for i := 0; i+1 < len(f); i++ {
		if (f[i] == "-j" || f[i] == "-g") && isOwnChain(chain(f[i+1])) {
			return true
		}
	}
	return false
}
