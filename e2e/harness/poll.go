package harness

import (
	"fmt"
	"time"
)

// poll calls check every interval until it reports done or timeout passes; it is the harness's only way to wait,
// so every wait has a deadline and a description of what it last saw. check returns whether the condition holds and
// a short description of the state it observed (errors from a not-yet-ready API are state, not failure). abort, when
// not nil, ends the wait early with its error: once the agent has exited, nothing the test waits for will happen.
func poll(timeout, interval time.Duration, abort func() error, what string, check func() (bool, string)) error {
	deadline := time.Now().Add(timeout)
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	var last string
	for {
		done, status := check()
		if done {
			return nil
		}
		last = status
		if abort != nil {
			if err := abort(); err != nil {
				return fmt.Errorf("waiting for %s: %w (last seen: %s)", what, err, last)
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s (last seen: %s)", timeout, what, last)
		}
		<-ticker.C
	}
}

// Poll is poll for scenarios, which wait on their own conditions with no agent exit to abort on.
func Poll(timeout, interval time.Duration, what string, check func() (bool, string)) error {
	return poll(timeout, interval, nil, what, check)
}
