package netfilter

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/istio-sidecar/istio-sidecar/driver/rules"
	"github.com/istio-sidecar/istio-sidecar/internal/testenv"
)

const allocA = "5f0c7a0e-1d2b-4c3a-8e9f-0a1b2c3d4e5f"
const allocB = "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d"

// requireRoot skips network tests unless they can create namespaces and run both iptables flavours.
func requireRoot(t testing.TB) {
	t.Helper()
	testenv.RequireRoot(t, "creates network namespaces")
	testenv.RequireTools(t, "ip", "iptables-nft-restore", "iptables-legacy-restore", "ip6tables-nft-restore")
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
	ns := testenv.NewNetns(t, "isc-test")
	return ns.Name, ns.Path
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
