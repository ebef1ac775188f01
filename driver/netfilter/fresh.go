package netfilter

import (
	"context"
	"fmt"
	"time"

	"github.com/istio-sidecar/istio-sidecar/driver/rules"
)

// applyFresh is Apply's first try on a namespace known to be clean: each family's FreshPayload, restored
// without reading the namespace first. It is what a new allocation's namespace meets, so most starts pay one
// process per family instead of a save and a restore. ok is false, with the namespace as it was, when a
// family cannot be written that way or its transaction fails (our chains exist after all; or anything else):
// Apply then takes the reading path, which also reports any real error properly.
//
// "Known to be clean" (the detector's flag) means the last full read of the namespace, by detection or by a
// Cleanup that read every backend and family, found no tagged rule of anyone's, and no Apply ran since. The -N
// lines prove only that our chains are absent from the one table the payload writes; the flag covers the
// rest: tagged leftovers in other tables (a cleanup that failed after its first table committed), another
// allocation's rules. What it cannot see is another process (the operator CLI, a second plugin) changing the
// namespace behind this one's back, short of creating our chains, which -N does catch.
//
// There is no stale family to sweep after a fresh install, for the same reason.
//
// ok says whether the fresh path decided the outcome (reports, or err); when it is false Apply reads. err is
// set when a family installed here could not be taken out again after a later one failed, or ::6 could not be
// put on lo.
func applyFresh(ctx context.Context, nsPath string, b Backend, rs rules.Ruleset) (reports []Report, ok bool, err error) {
	if !defaultDetector.takeClean(nsPath) {
		return nil, false, nil
	}
	payloads := make([]string, len(rs.Families))
	for i, fr := range rs.Families {
		p, fresh := fr.FreshPayload()
		if !fresh {
			return nil, false, nil
		}
		payloads[i] = p
	}
	for i, fr := range rs.Families {
		start := time.Now()
		if err := restore(ctx, nsPath, b, fr.Family, payloads[i]); err != nil {
			// Families before this one were installed fresh and hold only rs's rules: take them out by tag.
			if uerr := removeOwn(ctx, nsPath, b, rs.Owner, rs.Families[:i]); uerr != nil {
				return nil, true, fmt.Errorf("undo fresh install after %s failed: %w", fr.Family, uerr)
			}
			return nil, false, nil
		}
		reports = append(reports, Report{Backend: b.Name, Version: b.Version, Family: fr.Family,
			Rules: fr.RuleCount(), Changed: true, Fresh: true, Duration: time.Since(start)})
	}
	reports, err = withPassthrough6(ctx, nsPath, reports, func() error { return removeOwn(ctx, nsPath, b, rs.Owner, rs.Families) })
	return reports, true, err
}

// removeOwn removes the owner's rules from the families, by tag.
func removeOwn(ctx context.Context, nsPath string, b Backend, owner rules.Owner, families []rules.FamilyRules) error {
	for _, fr := range families {
		st, err := readState(ctx, nsPath, b, fr.Family, owner)
		if err == nil {
			if p := rules.CleanupPayload(st.present); p != "" {
				err = restore(ctx, nsPath, b, fr.Family, p)
			}
		}
		if err != nil {
			return fmt.Errorf("%s: %w", fr.Family, err)
		}
	}
	return nil
}
