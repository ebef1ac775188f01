package harness

import (
	"context"

	"github.com/istio-sidecar/istio-sidecar/internal/testenv"
)

// T is what the harness needs of its caller. *testing.T and *testing.B satisfy it, and so does `make demo`
// (e2e/demo), which runs the same agent, jobs and leftover checks outside a test: its Fatalf, like a test's, ends
// the calling goroutine and leaves the cleanups to run.
type T interface {
	testenv.TB
	Logf(format string, args ...any)
	Failed() bool
	// Context is done when the caller gives up (a test ending, the demo interrupted): the harness's waits stop
	// then instead of running to their timeout.
	Context() context.Context
}
