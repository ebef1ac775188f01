package netfilter

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/istio-sidecar/istio-sidecar/driver/rules"
)

// undoTimeout bounds taking back what an Apply did. The undo runs under a context of its own: the caller's may
// be the very thing that ended the apply (a SIGTERM to the CLI, a plugin shutting down), and an undo that
// fails on it would leave half a change behind.
const undoTimeout = 30 * time.Second

// undoContext is the context an undo runs under: ctx's values, not its cancellation, and its own deadline.
func undoContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), undoTimeout)
}

// undoFunc takes back one step, under the context it is given.
type undoFunc func(ctx context.Context) error

func noUndo(context.Context) error { return nil }

// undoStack holds how to take back each step already taken.
type undoStack []undoFunc

func (u *undoStack) push(undo undoFunc) { *u = append(*u, undo) }

// rollback takes every step back, the last first, under an undo context, and adds what could not be undone
// to err.
func (u undoStack) rollback(ctx context.Context, err error) error {
	uctx, cancel := undoContext(ctx)
	defer cancel()
	for i := len(u) - 1; i >= 0; i-- {
		if uerr := u[i](uctx); uerr != nil {
			err = errors.Join(err, fmt.Errorf("undo: %w", uerr))
		}
	}
	return err
}

// applyFamily applies one family and returns how to put back what was there before. pre is the family's
// state as Apply just read it, used for the first attempt.
//
// iptables-restore commits table by table (each COMMIT line, in both backends): a failure, or an interruption,
// in the nat part of a payload leaves its mangle part applied. So once a restore has been attempted, any
// failure after it, the re-read for a retry included, reverts to the state first read, under its own context.
func applyFamily(ctx context.Context, nsPath string, b Backend, owner rules.Owner, fr rules.FamilyRules, pre familyState) (Report, undoFunc, error) {
	start := time.Now()
	f := fr.Family
	rep := Report{Backend: b.Name, Version: b.Version, Family: f, Rules: fr.RuleCount(), Found: !pre.present.Empty()}
	revert := func(ctx context.Context) error { return revertFamily(ctx, nsPath, b, owner, f, pre.present) }
	changed, attempted, err := restoreFamily(ctx, nsPath, b, owner, fr, pre)
	if err != nil {
		if attempted {
			uctx, cancel := undoContext(ctx)
			defer cancel()
			if uerr := revert(uctx); uerr != nil {
				err = errors.Join(err, fmt.Errorf("undo: %w", uerr))
			}
		}
		return rep, noUndo, err
	}
	rep.Duration = time.Since(start)
	if !changed {
		return rep, noUndo, nil
	}
	rep.Changed = true
	return rep, revert, nil
}

// restoreFamily brings the family to fr in one transaction; attempted says whether a restore ran (and so may
// have committed part of its payload). A rule deleted by someone between our save and our restore makes -D
// fail and aborts the transaction untouched; one fresh read and retry covers that race.
func restoreFamily(ctx context.Context, nsPath string, b Backend, owner rules.Owner, fr rules.FamilyRules, pre familyState) (changed, attempted bool, err error) {
	f := fr.Family
	before := pre
	for attempt := 0; attempt < 2; attempt++ {
		if attempt > 0 {
			if before, err = readState(ctx, nsPath, b, f, owner); err != nil {
				return false, attempted, err
			}
		}
		if err = before.saved.CheckOwner(owner); err != nil {
			return false, attempted, fmt.Errorf("%s: %w", f, err)
		}
		if len(fr.Diff(before.present)) == 0 {
			return false, attempted, nil
		}
		attempted = true
		if err = restore(ctx, nsPath, b, f, fr.ReplacePayload(before.present)); err == nil {
			return true, true, nil
		}
	}
	return false, attempted, err
}

// revertFamily puts back what the owner had present in the family before, in place of what it has now.
func revertFamily(ctx context.Context, nsPath string, b Backend, owner rules.Owner, f rules.Family, previous rules.Present) error {
	now, err := readState(ctx, nsPath, b, f, owner)
	if err != nil {
		return err
	}
	if p := rules.RevertPayload(now.present, previous); p != "" {
		return restore(ctx, nsPath, b, f, p)
	}
	return nil
}
