package driver

import (
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/go-version"
	"github.com/hashicorp/nomad/plugins/drivers"
)

type fakeHost struct {
	root      bool
	missing   map[string]bool
	runs      map[string]int
	iptables  string
	agentJSON string
}

func (f *fakeHost) probes() probes {
	f.runs = map[string]int{}
	return probes{
		privileged: func() bool { return f.root },
		lookPath: func(tool string) (string, error) {
			if f.missing[tool] {
				return "", errors.New("not found")
			}
			return "/usr/sbin/" + tool, nil
		},
		executable: func(path string) (string, error) {
			if f.missing[path] {
				return "", errors.New("not found")
			}
			return "stamp", nil
		},
		readable: func(path string) error {
			if f.missing[path] {
				return errors.New("not readable")
			}
			return nil
		},
		run: func(path string, args ...string) ([]byte, error) {
			f.runs[path]++
			switch {
			case strings.HasSuffix(path, "pilot-agent"):
				return []byte(f.agentJSON), nil
			case strings.HasSuffix(path, "envoy"):
				return []byte("envoy  version: 0000000000000000000000000000000000000000/1.36.0/Clean/RELEASE/BoringSSL\n"), nil
			default:
				return []byte(f.iptables), nil
			}
		},
	}
}

func healthyHost() *fakeHost {
	return &fakeHost{
		root:      true,
		missing:   map[string]bool{},
		iptables:  "iptables v1.8.9 (nf_tables)\n",
		agentJSON: `{"clientVersion":{"version":"1.31-dev","revision":"eed52ebb66ad"}}`,
	}
}

func TestFingerprint_HealthyWithAttributes(t *testing.T) {
	s, _ := defaultConfig().validate()
	host := healthyHost()
	fp := buildFingerprint(s, host.probes(), &versionCache{})
	if fp.Health != drivers.HealthStateHealthy {
		t.Fatalf("health %s: %s", fp.Health, fp.HealthDescription)
	}
	want := map[string]string{
		"driver.istio-sidecar.version":             Version,
		"driver.istio-sidecar.pilot_agent.version": "1.31-dev",
		"driver.istio-sidecar.envoy.version":       "1.36.0",
		"driver.istio-sidecar.iptables.backend":    "nf_tables",
		"driver.istio-sidecar.iptables.version":    "1.8.9",
		"driver.istio-sidecar.network_modes":       "host,bridge,cni",
	}
	for k, v := range want {
		got, ok := fp.Attributes[k].GetString()
		if !ok || got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if b, ok := fp.Attributes["driver.istio-sidecar"].GetBool(); !ok || !b {
		t.Errorf("driver.istio-sidecar must be true")
	}
}

func TestFingerprint_UnhealthySaysExactlyWhatIsMissing(t *testing.T) {
	s, _ := defaultConfig().validate()
	cases := []struct {
		name   string
		mutate func(*fakeHost)
		want   string
	}{
		{"not root", func(h *fakeHost) { h.root = false }, "neither as root nor with CAP_NET_ADMIN"},
		{"no pilot-agent", func(h *fakeHost) { h.missing[s.PilotAgentPath] = true }, "pilot-agent (pilot_agent_path /usr/local/bin/pilot-agent): not found"},
		{"no envoy", func(h *fakeHost) { h.missing[s.EnvoyPath] = true }, "envoy (envoy_path /usr/local/bin/envoy): not found"},
		{"no template", func(h *fakeHost) { h.missing[s.BootstrapTemplatePath] = true }, "bootstrap_template_path /var/lib/istio/envoy/envoy_bootstrap_tmpl.json"},
		{"no iptables-restore", func(h *fakeHost) { h.missing["iptables-restore"] = true }, "iptables-restore not found in /usr/sbin:/usr/bin:/sbin:/bin"},
		{"garbage agent version", func(h *fakeHost) { h.agentJSON = "nope" }, "parsing `pilot-agent version -o json`"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			host := healthyHost()
			tc.mutate(host)
			fp := buildFingerprint(s, host.probes(), &versionCache{})
			if fp.Health != drivers.HealthStateUnhealthy || !strings.Contains(fp.HealthDescription, tc.want) {
				t.Fatalf("got %s %q, want unhealthy naming %q", fp.Health, fp.HealthDescription, tc.want)
			}
		})
	}
}

// A missing binary's version attribute is "" so that the node drops the stale value (a key left out of the
// map would stay on the node).
func TestFingerprint_MissingBinaryClearsItsVersion(t *testing.T) {
	s, _ := defaultConfig().validate()
	host := healthyHost()
	host.missing[s.PilotAgentPath] = true
	fp := buildFingerprint(s, host.probes(), &versionCache{})
	v, ok := fp.Attributes["driver.istio-sidecar.pilot_agent.version"].GetString()
	if !ok || v != "" {
		t.Fatalf("pilot_agent.version = %q, %v; want present and empty", v, ok)
	}
}

func TestFingerprint_VersionsAreCachedUntilTheBinaryChanges(t *testing.T) {
	s, _ := defaultConfig().validate()
	host := healthyHost()
	p := host.probes()
	cache := &versionCache{}
	buildFingerprint(s, p, cache)
	buildFingerprint(s, p, cache)
	if n := host.runs[s.PilotAgentPath]; n != 1 {
		t.Fatalf("pilot-agent ran %d times for two fingerprints, want 1", n)
	}
	if n := host.runs["/usr/sbin/iptables"]; n != 1 {
		t.Fatalf("iptables --version ran %d times for two fingerprints, want 1", n)
	}
	p.executable = func(string) (string, error) { return "new stamp", nil }
	buildFingerprint(s, p, cache)
	if n := host.runs[s.PilotAgentPath]; n != 2 {
		t.Fatalf("pilot-agent ran %d times after the binary changed, want 2", n)
	}
}

func TestParseIptablesVersion(t *testing.T) {
	for in, want := range map[string][2]string{
		"iptables v1.8.9 (nf_tables)\n": {"nf_tables", "1.8.9"},
		"iptables v1.8.9 (legacy)\n":    {"legacy", "1.8.9"},
		"iptables v1.6.1\n":             {"legacy", "1.6.1"},
	} {
		b, v, err := parseIptablesVersion(in)
		if err != nil || b != want[0] || v != want[1] {
			t.Errorf("%q: got %q %q %v", in, b, v, err)
		}
	}
	if _, _, err := parseIptablesVersion("ip6tables-restore"); err == nil {
		t.Error("garbage must not parse")
	}
}

// Nomad refuses to load a plugin whose PluginVersion is not semver; the Makefile stamps one, this is the default.
func TestVersion_IsSemver(t *testing.T) {
	if _, err := version.NewSemver(pluginInfo.PluginVersion); err != nil {
		t.Fatalf("PluginVersion %q: %v", pluginInfo.PluginVersion, err)
	}
}
