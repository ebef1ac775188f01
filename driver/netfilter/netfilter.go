// Package netfilter is the thin edge that installs, verifies and removes a rules.Ruleset inside a network
// namespace with iptables-restore/iptables-save (argv only, never a shell). It imports nothing from Nomad.
//
// Each family is changed by one `iptables-restore --noflush` transaction built by the rules package from what
// iptables-save shows (see rules/payload.go). Apply is idempotent (a namespace already holding exactly the
// ruleset is left alone), replaces a changed ruleset atomically, never names a rule that is not ours, and
// undoes an applied family if a later one fails. Cleanup finds our rules by tag only.
package netfilter

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/istio-sidecar/istio-sidecar/driver/rules"
)

// Report describes one family's apply, e.g. "iptables: 23 rules applied (nf_tables, IPv4) in 9 ms".
type Report struct {
	Backend  BackendName
	Version  string
	Family   rules.Family
	Rules    int
	Changed  bool // false when the namespace already held exactly this ruleset
	Duration time.Duration
}

func (r Report) String() string {
	verb := "applied"
	if !r.Changed {
		verb = "already in place"
	}
	return fmt.Sprintf("iptables: %d rules %s (%s, %s) in %d ms", r.Rules, verb, r.Backend, r.Family, r.Duration.Milliseconds())
}

// ErrDrift means the namespace does not hold exactly our ruleset.
var ErrDrift = errors.New("interception rules differ from the expected ruleset")

// familyState is one family's saved state and what the owner has in it.
type familyState struct {
	saved   rules.Saved
	present rules.Present
}

func readState(ctx context.Context, nsPath string, b Backend, f rules.Family, owner rules.Owner) (familyState, error) {
	out, err := run(ctx, nsPath, "", b.saveArgv(f)...)
	if err != nil {
		return familyState{}, fmt.Errorf("%s save: %w", f, err)
	}
	saved, err := rules.ParseSave(out)
	if err != nil {
		return familyState{}, fmt.Errorf("%s save: %w", f, err)
	}
	return familyState{saved: saved, present: saved.Present(owner)}, nil
}

func restore(ctx context.Context, nsPath string, b Backend, f rules.Family, payload string) error {
	if _, err := run(ctx, nsPath, payload, b.restoreArgv(f)...); err != nil {
		return diagnose(fmt.Errorf("%s restore: %w", f, err))
	}
	return nil
}

// Apply installs rs in the namespace, one transaction per family, and returns a report per family.
func Apply(ctx context.Context, nsPath string, rs rules.Ruleset) ([]Report, error) {
	if err := rs.Owner.Validate(); err != nil {
		return nil, err
	}
	b, err := Detect(ctx, nsPath)
	if err != nil {
		return nil, err
	}
	var reports []Report
	var undo []func() error
	for _, fr := range rs.Families {
		rep, revert, err := applyFamily(ctx, nsPath, b, rs, fr.Family)
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				if uerr := undo[i](); uerr != nil {
					err = errors.Join(err, fmt.Errorf("undo: %w", uerr))
				}
			}
			return nil, err
		}
		reports = append(reports, rep)
		undo = append(undo, revert)
	}
	return reports, dropStaleFamilies(ctx, nsPath, b, rs)
}

// dropStaleFamilies removes the owner's rules from a family the ruleset no longer has (the namespace lost its
// IPv6 address, say). A family whose tables cannot be read holds none of our rules.
func dropStaleFamilies(ctx context.Context, nsPath string, b Backend, rs rules.Ruleset) error {
	for _, f := range []rules.Family{rules.IPv4, rules.IPv6} {
		if _, ok := rs.Family(f); ok {
			continue
		}
		st, err := readState(ctx, nsPath, b, f, rs.Owner)
		if err != nil || st.present.Empty() {
			continue
		}
		if err := restore(ctx, nsPath, b, f, rules.CleanupPayload(st.present)); err != nil {
			return fmt.Errorf("remove stale %s rules: %w", f, err)
		}
	}
	return nil
}

// applyFamily applies one family and returns how to put back what was there before.
func applyFamily(ctx context.Context, nsPath string, b Backend, rs rules.Ruleset, f rules.Family) (Report, func() error, error) {
	start := time.Now()
	fr, _ := rs.Family(f)
	rep := Report{Backend: b.Name, Version: b.Version, Family: f, Rules: fr.RuleCount()}
	noop := func() error { return nil }
	var before familyState
	var err error
	// A rule deleted by someone between our save and our restore makes -D fail and aborts the transaction
	// untouched; one fresh read and retry covers that race.
	for attempt := 0; attempt < 2; attempt++ {
		before, err = readState(ctx, nsPath, b, f, rs.Owner)
		if err != nil {
			return rep, noop, err
		}
		if err = before.saved.CheckOwner(rs.Owner); err != nil {
			return rep, noop, fmt.Errorf("%s: %w", f, err)
		}
		if len(rs.Diff(f, before.present)) == 0 {
			rep.Duration = time.Since(start)
			return rep, noop, nil
		}
		if err = restore(ctx, nsPath, b, f, rs.ReplacePayload(f, before.present)); err == nil {
			break
		}
	}
	if err != nil {
		return rep, noop, err
	}
	rep.Changed, rep.Duration = true, time.Since(start)
	revert := func() error {
		now, err := readState(ctx, nsPath, b, f, rs.Owner)
		if err != nil {
			return err
		}
		if p := rules.RevertPayload(now.present, before.present); p != "" {
			return restore(ctx, nsPath, b, f, p)
		}
		return nil
	}
	return rep, revert, nil
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
	for _, fr := range rs.Families {
		st, err := readState(ctx, nsPath, b, fr.Family, rs.Owner)
		if err != nil {
			return err
		}
		if err := st.saved.CheckOwner(rs.Owner); err != nil {
			return fmt.Errorf("%s: %w", fr.Family, err)
		}
		if d := rs.Diff(fr.Family, st.present); len(d) > 0 {
			return fmt.Errorf("%w (%s backend): %s", ErrDrift, b.Name, strings.Join(d, "; "))
		}
	}
	return nil
}

// CleanupResult says what Cleanup removed.
type CleanupResult struct {
	Removed int
	// NamespaceGone is set when the namespace no longer existed: nothing to remove, and not an error.
	NamespaceGone bool
}

// Cleanup removes every rule tagged with allocID, and the chains only those rules filled, from both backends
// and both families, one transaction per backend and family. It never recomputes the config.
func Cleanup(ctx context.Context, nsPath, allocID string) (CleanupResult, error) {
	owner := rules.Owner{AllocID: allocID}
	if err := owner.Validate(); err != nil {
		return CleanupResult{}, err
	}
	var res CleanupResult
	err := forEachState(ctx, nsPath, owner, func(b Backend, f rules.Family, st familyState) error {
		p := rules.CleanupPayload(st.present)
		if p == "" {
			return nil
		}
		if err := restore(ctx, nsPath, b, f, p); err != nil {
			return err
		}
		res.Removed += len(st.present.Rules)
		return nil
	})
	if errors.Is(err, ErrNamespaceGone) {
		return CleanupResult{NamespaceGone: true}, nil
	}
	return res, err
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
	if _, err := openNSCheck(nsPath); err != nil {
		return err
	}
	for _, name := range []BackendName{NFTables, Legacy} {
		b, ok := probeBackend(ctx, name)
		if !ok {
			continue
		}
		for _, fam := range []rules.Family{rules.IPv4, rules.IPv6} {
			st, err := readState(ctx, nsPath, b, fam, owner)
			if errors.Is(err, ErrNamespaceGone) {
				return err
			}
			if err != nil {
				continue
			}
			if err := f(b, fam, st); err != nil {
				return err
			}
		}
	}
	return nil
}

func openNSCheck(nsPath string) (bool, error) {
	if nsPath == "" {
		return true, nil
	}
	netns, err := openNS(nsPath)
	if err != nil {
		return false, err
	}
	return true, netns.Close()
}
