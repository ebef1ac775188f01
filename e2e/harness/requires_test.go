package harness

import (
	"os"
	"testing"

	"github.com/istio-sidecar/istio-sidecar/internal/testenv"
)

// TestRequireBridgeNetworking_SkipsOrFails: with a prerequisite missing (no iptables in an empty PATH, whoever
// runs this), a scenario skips outside make and fails under `make test`.
func TestRequireBridgeNetworking_SkipsOrFails(t *testing.T) {
	for _, tc := range []struct{ env, want string }{{"", testenv.Skipped}, {"1", testenv.Failed}} {
		t.Run(testenv.RequireEnv+"="+tc.env, func(t *testing.T) {
			t.Setenv(testenv.RequireEnv, tc.env)
			t.Setenv("PATH", t.TempDir())
			got := testenv.Record(func(tb testenv.TB) { RequireBridgeNetworking(tb) })
			if got.Ended != tc.want {
				t.Errorf("RequireBridgeNetworking %s (%q), want %s", got.Ended, got.Message, tc.want)
			}
		})
	}
}

// TestRequireRoot_SkipsOrFails: as root the scenario runs; otherwise it skips outside make and fails under
// `make test`.
func TestRequireRoot_SkipsOrFails(t *testing.T) {
	for _, tc := range []struct{ env, want string }{{"", testenv.Skipped}, {"1", testenv.Failed}} {
		t.Run(testenv.RequireEnv+"="+tc.env, func(t *testing.T) {
			t.Setenv(testenv.RequireEnv, tc.env)
			want := tc.want
			if os.Geteuid() == 0 {
				want = ""
			}
			got := testenv.Record(func(tb testenv.TB) { RequireRoot(tb) })
			if got.Ended != want {
				t.Errorf("RequireRoot as uid %d: ended %q (%q), want %q", os.Geteuid(), got.Ended, got.Message, want)
			}
		})
	}
}
