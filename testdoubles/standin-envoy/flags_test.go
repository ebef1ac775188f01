package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

// pilotAgentArgs is the argv the real pilot-agent (1.31-dev) passed to Envoy on this machine; see
// pkg/envoy/proxy.go (args) in Istio.
var pilotAgentArgs = []string{"-c", "/etc/istio/proxy/envoy-rev.json", "--drain-time-s", "45", "--drain-strategy",
	"immediate", "--local-address-ip-version", "v4", "--file-flush-interval-msec", "1000", "--disable-hot-restart",
	"--allow-unknown-static-fields", "-l", "warning", "--skip-deprecated-logs"}

func TestParseFlagsPilotAgentArgs(t *testing.T) {
	args := append(slices.Clone(pilotAgentArgs), "--concurrency", "4", "--component-log-level", "misc:error",
		"--file-flush-min-size-kb", "64", "--config-yaml", `{"a":1}`, "--enable-core-dump", "--log-format", "%v",
		"--service-cluster", "c", "--service-node", "n", "--parent-shutdown-time-s", "60")
	o, err := parseFlags(args)
	if err != nil {
		t.Fatalf("parseFlags: %v", err)
	}
	if o.configPath != "/etc/istio/proxy/envoy-rev.json" || o.logLevel != "warning" || o.drainTimeS != 45 ||
		o.concurrency != 4 || o.configYAML != `{"a":1}` {
		t.Errorf("parsed %+v", o)
	}
	if len(o.unknown) != 0 {
		t.Errorf("unknown = %q, want none: every flag pilot-agent passes is a known Envoy flag", o.unknown)
	}
}

func TestParseFlagsUnknownAccepted(t *testing.T) {
	o, err := parseFlags([]string{"--config-path=/b.json", "--future-flag", "x", "--future-switch", "-l", "debug",
		"--other=1", "stray"})
	if err != nil {
		t.Fatalf("parseFlags: %v", err)
	}
	if o.configPath != "/b.json" || o.logLevel != "debug" {
		t.Errorf("parsed %+v", o)
	}
	want := []string{"--future-flag", "--future-switch", "--other=1", "stray"}
	if !slices.Equal(o.unknown, want) {
		t.Errorf("unknown = %q, want %q", o.unknown, want)
	}
	if o.all["future-flag"] != "x" {
		t.Errorf("future-flag value = %q, want x", o.all["future-flag"])
	}
}

func TestParseFlagsErrors(t *testing.T) {
	for _, args := range [][]string{{"-c"}, {"--concurrency", "many"}, {"--drain-time-s=soon"}} {
		if _, err := parseFlags(args); err == nil {
			t.Errorf("parseFlags(%q) succeeded, want an error", args)
		}
	}
}

func TestVersionOutput(t *testing.T) {
	t.Setenv(envVersion, "")
	var out, errOut bytes.Buffer
	if code := run([]string{"--version"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errOut.String())
	}
	want := "\nenvoy  version: 0000000000000000000000000000000000000000/1.36.0/Clean/RELEASE/BoringSSL\n\n"
	if out.String() != want {
		t.Errorf("--version printed %q, want %q", out.String(), want)
	}
}

func TestRunRefusesBadInput(t *testing.T) {
	cases := map[string]struct {
		args []string
		mode string
	}{
		"no config":    {args: []string{"-l", "info"}},
		"missing file": {args: []string{"-c", "/nonexistent/envoy-rev.json"}},
		"unknown mode": {args: []string{"--version"}, mode: "sometimes"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Setenv(envMode, tc.mode)
			var out, errOut bytes.Buffer
			if code := run(tc.args, &out, &errOut); code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			if !strings.Contains(errOut.String(), "standin-envoy:") {
				t.Errorf("stderr %q names no cause", errOut.String())
			}
		})
	}
}

func TestValidateMode(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"--mode", "validate", "-c", "testdata/bootstrap-default.json"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "OK") {
		t.Errorf("validate printed %q", out.String())
	}
}
