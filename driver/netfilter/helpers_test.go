package netfilter

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/istio-sidecar/istio-sidecar/driver/rules"
)

const allocA = "5f0c7a0e-1d2b-4c3a-8e9f-0a1b2c3d4e5f"
const allocB = "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d"

// requireRoot skips network tests unless they can create namespaces and run both iptables flavours.
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, "needs root to create network namespaces")
	}
	for _, bin := range []string{"ip", "iptables-nft-restore", "iptables-legacy-restore", "ip6tables-nft-restore"} {
		if _, err := exec.LookPath(bin); err != nil {
			skipOrFail(t, "needs %s: %v", bin, err)
		}
	}
}

// skipOrFail skips, except under `make test` (ISTIO_SIDECAR_REQUIRE_INTEGRATION), where a missing piece must
// fail rather than pass as a skip.
func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("ISTIO_SIDECAR_REQUIRE_INTEGRATION") != "" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

func sh(t testing.TB, argv ...string) string {
	t.Helper()
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return string(out)
}

// newNS creates a fresh namespace isc-test-<random> with loopback up and removes it when the test ends.
func newNS(t testing.TB) (name, path string) {
	t.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name = "isc-test-" + hex.EncodeToString(b)
	sh(t, "ip", "netns", "add", name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	sh(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name, "/var/run/netns/" + name
}

var counters = regexp.MustCompile(`\[\d+:\d+\]`)

// saveAll is the namespace's complete state in one backend, both families, without timestamps or counters.
func saveAll(t testing.TB, nsName string, b BackendName) string {
	t.Helper()
	flavour := "nft"
	if b == Legacy {
		flavour = "legacy"
	}
	var out strings.Builder
	for _, bin := range []string{"iptables-" + flavour + "-save", "ip6tables-" + flavour + "-save"} {
		for _, l := range strings.Split(sh(t, "ip", "netns", "exec", nsName, bin), "\n") {
			if !strings.HasPrefix(l, "#") {
				out.WriteString(counters.ReplaceAllString(l, "[0:0]") + "\n")
			}
		}
	}
	return out.String()
}

func build(t testing.TB, spec rules.Spec, env rules.Env, alloc string) rules.Ruleset {
	t.Helper()
	cfg, err := rules.Parse(spec, rules.StandardDefaults(), env)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := rules.Build(cfg, rules.Owner{AllocID: alloc})
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds or the deadline passes; tests never sleep for synchronisation.
func waitFor(t testing.TB, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s: %v", what, err)
}

func mustf(t testing.TB, err error, format string, args ...any) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", fmt.Sprintf(format, args...), err)
	}
}
