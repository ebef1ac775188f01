// Package testenv holds what the tests of several packages need from the machine they run on: the decision to
// skip or fail when a prerequisite is missing, a throwaway network namespace, and a throwaway mesh root
// certificate. Test files import it, and so do the e2e harness and the demo built on it; the plugin never does.
//
// Outside `make`, a test that cannot run here skips with the reason. Under `make test`, which sets
// ISTIO_SIDECAR_REQUIRE_INTEGRATION, the same test fails instead, so CI never reports a skipped test as passed.
package testenv

// TB is what the helpers need of a test. *testing.T, *testing.B and the e2e harness's T satisfy it.
type TB interface {
	Helper()
	Cleanup(func())
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
}
