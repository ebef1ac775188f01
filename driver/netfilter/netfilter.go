// Package netfilter is the thin edge that installs, verifies and removes a rules.Ruleset inside a network
// namespace with iptables-restore/iptables-save (argv only, never a shell). It imports nothing from Nomad.
//
// Each family is changed by one `iptables-restore --noflush` transaction built by the rules package from what
// iptables-save shows (see rules/payload.go). Apply is idempotent (a namespace already holding exactly the
// ruleset is left alone), replaces a changed ruleset atomically, never names a rule that is not ours, and
// undoes an applied family if a later one fails. Cleanup finds our rules by tag only. In TPROXY mode Apply also
// installs Istio's policy routing (fwmark rule and local route in table 133) with the `ip` command, and
// Cleanup removes it; routing.go says how it is identified without tags.
package netfilter

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/istio-sidecar/istio-sidecar/driver/istio"
	"github.com/istio-sidecar/istio-sidecar/driver/rules"
)

// Report describes one family's apply, e.g. "iptables: 23 rules applied (nf_tables, IPv4) in 9 ms".
type Report struct {
	Backend  BackendName
	Version  string
	Family   rules.Family
	Rules    int
	Changed  bool // false when the namespace already held exactly this ruleset
	Found    bool // the family held rules of this owner before this apply (a restart, a changed ruleset)
	Duration time.Duration
	// Routing is the family's TPROXY policy routing (see routing.go); nil when the family has none and none
	// was removed.
	Routing *Routing
	// Passthrough6Added: this apply put ::6/128 on lo (IPv6 only; passthrough6.go).
	Passthrough6Added bool
}

// String reads e.g. "iptables: 23 rules applied (nf_tables, IPv4) in 9 ms", followed in TPROXY mode by
// "; policy routing: fwmark 1337 → table 133 added".
func (r Report) String() string {
	verb := "applied"
	if !r.Changed {
		verb = "already in place"
	}
	s := fmt.Sprintf("iptables: %d rules %s (%s, %s) in %d ms", r.Rules, verb, r.Backend, r.Family, r.Duration.Milliseconds())
	if r.Routing != nil {
		s += "; " + r.Routing.String()
	}
	if r.Passthrough6Added {
		s += "; " + Passthrough6 + " added to lo"
	}
	return s
}

// ErrDrift means the namespace does not hold exactly our ruleset.
var ErrDrift = errors.New("interception rules differ from the expected ruleset")

func restore(ctx context.Context, nsPath string, b Backend, f rules.Family, payload string) error {
	if _, err := run(ctx, nsPath, payload, b.restoreArgv(f)...); err != nil {
		return diagnose(fmt.Errorf("%s restore: %w", f, err))
	}
	return nil
}

// Apply installs rs in the namespace, one transaction per family, and returns a report per family. In TPROXY
// mode it also installs the family's policy routing (routing.go) after the iptables rules; policy routing rs
// no longer wants is removed before them. Any failure undoes every step already taken.
func Apply(ctx context.Context, nsPath string, rs rules.Ruleset) ([]Report, error) {
	if err := rs.Owner.Validate(); err != nil {
		return nil, err
	}
	b, err := Detect(ctx, nsPath)
	if err != nil {
		return nil, err
	}
	changes, err := readChanges(ctx, nsPath, b, rs)
	if err != nil {
		return nil, err
	}
	var undo undoStack
	reports, err := applyChanges(ctx, nsPath, b, rs.Owner, changes, &undo)
	if err != nil {
		return nil, undo.rollback(ctx, err)
	}
	reports, err = withPassthrough6(ctx, nsPath, reports, func() error { return undo.rollback(ctx, nil) })
	if err != nil {
		return nil, err
	}
	return reports, dropStaleFamilies(ctx, nsPath, b, changes)
}

// familyChange is one IP family as Apply meets it: the ruleset's rules for it, if it has the family, and what
// the namespace held there when Apply read it.
type familyChange struct {
	family rules.Family
	want   rules.FamilyRules
	wanted bool
	// state is the family as read; zero when its tables cannot be read, as then they hold none of our rules.
	state familyState
}

// readChanges reads both families at once. One read per family serves the stale-routing check, the first
// attempt of each family and the stale-family sweep: every extra iptables-save or ip process is paid on every
// start. A family the ruleset wants must be readable.
func readChanges(ctx context.Context, nsPath string, b Backend, rs rules.Ruleset) ([]familyChange, error) {
	reads := readStates(ctx, nsPath, rs.Owner, []stateKey{{b, rules.IPv4}, {b, rules.IPv6}})
	changes := make([]familyChange, len(reads))
	for i, r := range reads {
		c := familyChange{family: r.family}
		c.want, c.wanted = rs.Family(r.family)
		if r.err != nil && c.wanted {
			return nil, r.err
		}
		if r.err == nil {
			c.state = r.state
		}
		changes[i] = c
	}
	return changes, nil
}

// applyChanges takes Apply's steps in order, pushing how to undo each: the policy routing no longer wanted
// goes, then each wanted family's rules go in, then their policy routing.
func applyChanges(ctx context.Context, nsPath string, b Backend, owner rules.Owner, changes []familyChange, undo *undoStack) ([]Report, error) {
	removed, err := dropStaleRouting(ctx, nsPath, changes, undo)
	if err != nil {
		return nil, err
	}
	var wanted []familyChange
	for _, c := range changes {
		if c.wanted {
			wanted = append(wanted, c)
		}
	}
	var reports []Report
	for _, c := range wanted {
		fr := c.want
		rep, revert, err := applyFamily(ctx, nsPath, b, owner, fr, c.state)
		if err != nil {
			return nil, err
		}
		if m, ok := removed[fr.Family]; ok {
			rep.Routing = &Routing{Mark: m, Table: istio.TProxyRouteTable, Removed: true}
		}
		reports = append(reports, rep)
		undo.push(revert)
	}
	for i, c := range wanted {
		fr := c.want
		mark, ok := fr.TProxyMark()
		if !ok {
			continue
		}
		added, revert, err := addRouting(ctx, nsPath, fr.Family, mark)
		if err != nil {
			return nil, err
		}
		reports[i].Routing = &Routing{Mark: mark, Table: istio.TProxyRouteTable, Changed: added}
		undo.push(revert)
	}
	return reports, nil
}

// dropStaleFamilies removes the owner's rules from a family the ruleset no longer has (the namespace lost its
// IPv6 address, say). A family whose tables cannot be read holds none of our rules.
func dropStaleFamilies(ctx context.Context, nsPath string, b Backend, changes []familyChange) error {
	for _, c := range changes {
		if c.wanted || c.state.present.Empty() {
			continue
		}
		if _, err := removeFamily(ctx, nsPath, b, c.family, c.state.present); err != nil {
			return fmt.Errorf("remove stale %s rules: %w", c.family, err)
		}
	}
	return nil
}

// Verify checks that the namespace holds exactly rs (our tagged rules, chain by chain, in order).
func Verify(ctx context.Context, nsPath string, rs rules.Ruleset) error {
	if err := rs.Owner.Validate(); err != nil {
		return err
	}
	b, err := Detect(ctx, nsPath)
	if err != nil {
		return err
	}
	keys := make([]stateKey, len(rs.Families))
	for i, fr := range rs.Families {
		keys[i] = stateKey{b, fr.Family}
	}
	reads := readStates(ctx, nsPath, rs.Owner, keys)
	for i, fr := range rs.Families {
		if reads[i].err != nil {
			return reads[i].err
		}
		if err := verifyFamily(ctx, nsPath, b, rs.Owner, fr, reads[i].state); err != nil {
			return err
		}
	}
	return nil
}

// verifyFamily checks one family against its state as read, and what goes with its rules: ::6 on lo for
// IPv6, the policy routing for TPROXY.
func verifyFamily(ctx context.Context, nsPath string, b Backend, owner rules.Owner, fr rules.FamilyRules, st familyState) error {
	if err := st.saved.CheckOwner(owner); err != nil {
		return fmt.Errorf("%s: %w", fr.Family, err)
	}
	if d := fr.Diff(st.present); len(d) > 0 {
		return fmt.Errorf("%w (%s backend): %s", ErrDrift, b.Name, strings.Join(d, "; "))
	}
	if fr.Family == rules.IPv6 {
		present, _, err := passthrough6State(ctx, nsPath)
		if err != nil {
			return err
		}
		if !present {
			return fmt.Errorf("%w: %s missing from lo", ErrDrift, Passthrough6)
		}
	}
	if mark, ok := fr.TProxyMark(); ok {
		missing, err := checkRouting(ctx, nsPath, fr.Family, mark)
		if err != nil {
			return err
		}
		if missing != "" {
			return fmt.Errorf("%w: %s", ErrDrift, missing)
		}
	}
	return nil
}

// CleanupResult says what Cleanup removed.
type CleanupResult struct {
	Removed int
	// RemovedBy is Removed per owner.
	RemovedBy map[string]int
	// NamespaceGone is set when the namespace no longer existed: nothing to remove, and not an error.
	NamespaceGone bool
	// Passthrough6Removed: ::6/128 was ours and went from lo with our IPv6 rules (passthrough6.go).
	Passthrough6Removed bool
}

// Cleanup removes every rule tagged with allocID ("" is every allocation's), and the chains only those rules
// filled, from both backends and both families, one transaction per backend and family. It never recomputes
// the config. The TPROXY policy routing whose mark those rules name goes first (routing.go explains why in
// that order).
func Cleanup(ctx context.Context, nsPath, allocID string) (CleanupResult, error) {
	owner := rules.Owner{AllocID: allocID}
	if allocID != "" {
		if err := owner.Validate(); err != nil {
			return CleanupResult{}, err
		}
	}
	res := CleanupResult{RemovedBy: map[string]int{}}
	err := forEachState(ctx, nsPath, owner, func(b Backend, f rules.Family, st familyState) error {
		if _, _, err := removeRouting(ctx, nsPath, f, st.present.TProxyMarks()); err != nil {
			return err
		}
		p6, err := removeFamily(ctx, nsPath, b, f, st.present)
		if err != nil {
			return err
		}
		res.Passthrough6Removed = res.Passthrough6Removed || p6
		res.Removed += st.present.RuleCount()
		for o, n := range st.present.RuleCounts() {
			res.RemovedBy[o] += n
		}
		return nil
	})
	if errors.Is(err, ErrNamespaceGone) {
		return CleanupResult{NamespaceGone: true}, nil
	}
	return res, err
}

// removeFamily removes what one owner has present in a family, by tag, and in IPv6 our ::6 first
// (passthrough6.go); p6 says whether that went. Nothing present is nothing to do.
func removeFamily(ctx context.Context, nsPath string, b Backend, f rules.Family, present rules.Present) (p6 bool, err error) {
	p := rules.CleanupPayload(present)
	if p == "" {
		return false, nil
	}
	if f == rules.IPv6 {
		if p6, err = removePassthrough6(ctx, nsPath); err != nil {
			return false, err
		}
	}
	return p6, restore(ctx, nsPath, b, f, p)
}

// Owners lists the alloc IDs owning rules in the namespace, in any backend or family.
func Owners(ctx context.Context, nsPath string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	err := forEachState(ctx, nsPath, rules.Owner{}, func(_ Backend, _ rules.Family, st familyState) error {
		for _, o := range st.saved.Owners() {
			if !seen[o] {
				seen[o] = true
				out = append(out, o)
			}
		}
		return nil
	})
	return out, err
}

// forEachState visits each installed backend and family whose tables can be read; a family that cannot be
// read at all (e.g. no IPv6 tables) is skipped, since it cannot hold our rules either.
func forEachState(ctx context.Context, nsPath string, owner rules.Owner, f func(Backend, rules.Family, familyState) error) error {
	if err := openNSCheck(nsPath); err != nil {
		return err
	}
	reads := readStates(ctx, nsPath, owner, savesFor(nsPath, installedBackends(ctx)...))
	if err := ctx.Err(); err != nil {
		// The saves were cut short, not unreadable: "no rules here" would be a guess.
		return fmt.Errorf("reading the rules: %w", err)
	}
	for _, r := range reads {
		if errors.Is(r.err, ErrNamespaceGone) {
			return r.err
		}
	}
	for _, r := range reads {
		if r.err != nil {
			continue
		}
		if err := f(r.backend, r.family, r.state); err != nil {
			return err
		}
	}
	return nil
}

// openNSCheck fails with ErrNamespaceGone when the namespace no longer exists.
func openNSCheck(nsPath string) error {
	if nsPath == "" {
		return nil
	}
	netns, err := openNS(nsPath)
	if err != nil {
		return err
	}
	return netns.Close()
}
