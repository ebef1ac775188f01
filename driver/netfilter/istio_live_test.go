package netfilter

import (
	"os"
	"os/exec"
	"regexp"
	"testing"

	"github.com/istio-sidecar/istio-sidecar/driver/rules"
	"github.com/istio-sidecar/istio-sidecar/internal/testenv"
)

var ourComment = regexp.MustCompile(` -m comment --comment "` + regexp.QuoteMeta(rules.TagPrefix) + `[^"]*"`)

// TestMatchesLiveIstio runs the real `pilot-agent istio-iptables` in one namespace and our Apply for the same
// settings in another, and compares both iptables-save outputs with our comment removed: for the default
// sidecar settings, and for several proxy IDs, an owner-group exclusion and a wider loopback CIDR at once.
func TestMatchesLiveIstio(t *testing.T) {
	requireRoot(t)
	pilotAgent := os.Getenv("ISTIO_SIDECAR_PILOT_AGENT")
	if _, err := os.Stat(pilotAgent); pilotAgent == "" || err != nil {
		testenv.SkipOrFail(t, "set ISTIO_SIDECAR_PILOT_AGENT to a pilot-agent (build/pilot-agent.sh builds one): %q %v", pilotAgent, err)
	}
	base := []string{"-p", "15001", "-z", "15006", "-m", "REDIRECT", "-b", "*", "-d", "15090,15021,15020", "-i", "*"}
	t.Run("defaults", func(t *testing.T) {
		compareLive(t, pilotAgent, append(base, "-u", "1337", "-g", "1337"), nil, rules.Spec{}, rules.StandardDefaults())
	})
	t.Run("proxy IDs, owner groups, loopback CIDR", func(t *testing.T) {
		d := rules.StandardDefaults()
		d.ProxyUIDs, d.ProxyGIDs = []uint32{1337, 2000}, []uint32{1337, 3000}
		spec := rules.Spec{ExcludeOutboundOwnerGroups: []string{"4000", "4001"}, OutboundIPv4LoopbackCIDR: "127.0.0.0/8"}
		env := []string{"ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE=4000,4001", "ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR=127.0.0.0/8"}
		compareLive(t, pilotAgent, append(base, "-u", "1337,2000", "-g", "1337,3000"), env, spec, d)
	})
}

func compareLive(t *testing.T, pilotAgent string, args, env []string, spec rules.Spec, d rules.Defaults) {
	istioNS, _ := newNS(t)
	// Istio refuses a namespace without a non-loopback address.
	sh(t, "ip", "-n", istioNS, "link", "add", "d0", "type", "veth", "peer", "name", "d1")
	sh(t, "ip", "-n", istioNS, "addr", "add", "10.212.9.2/24", "dev", "d0")
	sh(t, "ip", "-n", istioNS, "link", "set", "d0", "up")
	cmd := exec.Command("ip", append([]string{"netns", "exec", istioNS, pilotAgent, "istio-iptables"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("istio-iptables: %v\n%s", err, out)
	}
	cfg, err := rules.Parse(spec, d, rules.Env{})
	mustf(t, err, "parse")
	rs, err := rules.Build(cfg, rules.Owner{AllocID: allocA})
	mustf(t, err, "build")
	ourNS, ourPath := newNS(t)
	_, err = Apply(testCtx(t), ourPath, rs)
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
