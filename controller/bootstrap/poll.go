package bootstrap

import (
	"context"
	"fmt"
	"time"
)

// pollInterval is how often a condition on a remote system is checked again.
const pollInterval = 250 * time.Millisecond

// until calls cond until it returns nil, ctx ends, or timeout passes; the error then names what and cond's last
// error.
func until(ctx context.Context, timeout time.Duration, what string, cond func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s (waited %s): %w", what, timeout, err)
		case <-tick.C:
		}
	}
}
