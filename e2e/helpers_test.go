//go:build e2e

// Package e2e runs the istio-sidecar driver's scenarios against a real Nomad v1.6.3 agent; see
// e2e/harness for the harness and the environment variables it reads. Run with `go test -tags e2e ./e2e/` as root.
package e2e

import (
	"testing"

	"github.com/istio-sidecar/istio-sidecar/e2e/harness"
)

// pluginOptions returns agent options that load the plugin with the pilot-agent and Envoy from the environment
// (or their defaults). It fails the test when the plugin is not built.
func pluginOptions(t testing.TB) harness.Options {
	t.Helper()
	return harness.Options{
		PluginBin: harness.PluginBin(t),
		PluginConfig: map[string]any{
			"pilot_agent_path": harness.PilotAgentBin(t),
			"envoy_path":       harness.EnvoyBin(t),
			// Istio's packages install the template at the plugin's default path; here it sits beside the
			// pilot-agent the suite built.
			"bootstrap_template_path": harness.BootstrapTemplate(t),
			// The stand-in's knobs (its connection log) travel in the sidecar task's env.
			"env_passthrough": []string{"ISTIO_META_", "STANDIN_ENVOY_"},
		},
	}
}
