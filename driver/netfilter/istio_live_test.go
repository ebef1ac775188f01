package netfilter

import (
	"os"
	"regexp"
	"testing"

	"github.com/istio-sidecar/istio-sidecar/driver/rules"
	"github.com/istio-sidecar/istio-sidecar/internal/testenv"
)

var ourComment = regexp.MustCompile(` -m comment --comment "` + regexp.QuoteMeta(rules.TagPrefix) + `[^"]*"`)

// TestMatchesLiveIstio runs the real `pilot-agent istio-iptables` for the default sidecar settings in one
// namespace and our Apply in another, and compares both iptables-save outputs with our comment removed.
func TestMatchesLiveIstio(t *testing.T) {
	requireRoot(t)
	pilotAgent := os.Getenv("ISTIO_SIDECAR_PILOT_AGENT")
	if _, err := os.Stat(pilotAgent); pilotAgent == "" || err != nil {
		testenv.SkipOrFail(t, "set ISTIO_SIDECAR_PILOT_AGENT to a pilot-agent (build/pilot-agent.sh builds one): %q %v", pilotAgent, err)
	}
	istioNS, _ := newNS(t)
	// Istio refuses a namespace without a non-loopback address.
	sh(t, "ip", "-n", istioNS, "link", "add", "d0", "type", "veth", "peer", "name", "d1")
	sh(t, "ip", "-n", istioNS, "addr", "add", "10.212.9.2/24", "dev", "d0")
	sh(t, "ip", "-n", istioNS, "link", "set", "d0", "up")
	sh(t, "ip", "netns", "exec", istioNS, pilotAgent, "istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337",
		"-g", "1337", "-m", "REDIRECT", "-b", "*", "-d", "15090,15021,15020", "-i", "*")
	ourNS, ourPath := newNS(t)
	_, err := Apply(testCtx(t), ourPath, build(t, rules.Spec{}, rules.Env{}, allocA))
	mustf(t, err, "apply")

	// Istio also leaves an empty ip6tables nat table behind; only the IPv4 rules are compared.
	want := sh(t, "ip", "netns", "exec", istioNS, "iptables-nft-save")
	got := ourComment.ReplaceAllString(sh(t, "ip", "netns", "exec", ourNS, "iptables-nft-save"), "")
	want, got = stripSaveComments(want), stripSaveComments(got)
	if len(want) < 200 {
		t.Fatalf("Istio produced no rules:\n%s", want)
	}
	if got != want {
		t.Errorf("iptables-save differs from Istio's:\n--- istio\n%s\n--- ours (comment removed)\n%s", want, got)
	}
}

var saveComment = regexp.MustCompile(`(?m)^#.*\n`)

func stripSaveComments(s string) string {
	return counters.ReplaceAllString(saveComment.ReplaceAllString(s, ""), "[0:0]")
}
