package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
)

// run is one demo run, standing where a test stands for the e2e harness (harness.T). Fatalf ends the goroutine of
// the step that called it, as it ends a test, and every cleanup still runs afterwards, each on a goroutine of its
// own so that one ending early does not stop the others.
type run struct {
	ctx context.Context // done when the user interrupts the demo

	mu         sync.Mutex
	failed     bool
	cleaningUp bool
	leftovers  int // errors reported while cleaning up: something of the demo was left (and removed)
	cleanups   []func()
}

func (r *run) Helper()                  {}
func (r *run) Context() context.Context { return r.ctx }

func (r *run) Logf(format string, args ...any) { say("%s", fmt.Sprintf(format, args...)) }

func (r *run) Errorf(format string, args ...any) {
	r.mu.Lock()
	r.failed = true
	if r.cleaningUp {
		r.leftovers++
	}
	r.mu.Unlock()
	msg := strings.ReplaceAll(fmt.Sprintf(format, args...), "\n", "\n      ")
	fmt.Fprintf(os.Stderr, "\ndemo: %s\n", msg)
}

func (r *run) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	runtime.Goexit()
}

// Skipf is a failure: a demo that cannot run here has not shown anything.
func (r *run) Skipf(format string, args ...any) { r.Fatalf("cannot run here: "+format, args...) }

func (r *run) Cleanup(f func()) {
	r.mu.Lock()
	r.cleanups = append(r.cleanups, f)
	r.mu.Unlock()
}

func (r *run) Failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed
}

// fail marks the run failed without a message of its own (an interrupt says so itself).
func (r *run) fail() {
	r.mu.Lock()
	r.failed = true
	r.mu.Unlock()
}

// do runs f on a goroutine of its own and waits for it, so that a Fatalf in f (runtime.Goexit) ends only f.
func (r *run) do(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	<-done
}

// cleanUp runs the cleanups, the last registered first, as the testing package does.
func (r *run) cleanUp() {
	r.mu.Lock()
	r.cleaningUp = true
	r.mu.Unlock()
	for {
		r.mu.Lock()
		n := len(r.cleanups)
		if n == 0 {
			r.mu.Unlock()
			return
		}
		f := r.cleanups[n-1]
		r.cleanups = r.cleanups[:n-1]
		r.mu.Unlock()
		r.do(f)
	}
}

func (r *run) leftoverCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.leftovers
}

// step prints a step's heading; say and indent print what it shows.
func step(format string, args ...any) { fmt.Printf("\n==> %s\n", fmt.Sprintf(format, args...)) }

func say(format string, args ...any) {
	fmt.Print(indentLines(fmt.Sprintf(format, args...), "    "))
}

func indent(lines []string) {
	for _, l := range lines {
		fmt.Print(indentLines(l, "      "))
	}
}

func indentLines(s, prefix string) string {
	return prefix + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+prefix) + "\n"
}
