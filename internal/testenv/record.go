package testenv

import (
	"fmt"
	"runtime"
)

// How a helper ended a test, in an Outcome.
const (
	Skipped = "skipped"
	Failed  = "failed"
)

// Outcome is what Record saw a helper do to the test it was given.
type Outcome struct {
	// Ended is Skipped or Failed when the helper skipped or failed the test (Errorf counts as failed), "" when it
	// returned with the test still passing.
	Ended string
	// Message is the last message the helper gave.
	Message string
}

// Record runs f with a TB that records how f ends the test, and returns that. Like *testing.T, its Skipf and
// Fatalf stop f's goroutine, so f never carries on past them. It is for tests of helpers that decide between
// skipping and failing; f's cleanups run before Record returns.
func Record(f func(TB)) Outcome {
	r := &recorder{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer r.runCleanups()
		f(r)
	}()
	<-done
	return r.out
}

type recorder struct {
	out      Outcome
	cleanups []func()
}

func (r *recorder) Helper()          {}
func (r *recorder) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }

func (r *recorder) Errorf(format string, args ...any) {
	r.out = Outcome{Ended: Failed, Message: fmt.Sprintf(format, args...)}
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	runtime.Goexit()
}

func (r *recorder) Skipf(format string, args ...any) {
	r.out = Outcome{Ended: Skipped, Message: fmt.Sprintf(format, args...)}
	runtime.Goexit()
}

func (r *recorder) runCleanups() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
}
