package testenv

import (
	"os"
	"os/exec"
)

// RequireEnv is the variable `make test` sets to turn every "cannot run here" skip into a failure.
const RequireEnv = "ISTIO_SIDECAR_REQUIRE_INTEGRATION"

// Required reports whether a test that cannot run here must fail rather than skip.
func Required() bool { return os.Getenv(RequireEnv) != "" }

// SkipOrFail ends the test with the reason: a skip, or under `make test` (RequireEnv set) a failure.
func SkipOrFail(t TB, format string, args ...any) {
	t.Helper()
	if Required() {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// RequireRoot ends the test through SkipOrFail unless it runs as root; why says what needs root.
func RequireRoot(t TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		SkipOrFail(t, "needs root: %s", why)
	}
}

// RequireTools ends the test through SkipOrFail unless every tool is in PATH.
func RequireTools(t TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			SkipOrFail(t, "needs %s: %v", tool, err)
		}
	}
}
