package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// runCLI runs the command line as main does and returns its exit code and outputs.
func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestExitCodes: what a script sees for each kind of mistake; errors go to stderr and nothing to stdout.
func TestExitCodes(t *testing.T) {
	empty := "testdata/empty.hcl"
	bad := writeFile(t, "bad.hcl", `exclude_outbound_ip_ranges = ["10.0.0.0/33"]`)
	badHCL := writeFile(t, "syntax.hcl", `dns_capture = `)
	badIDs := writeFile(t, "plugin.hcl", `extra_proxy_uids = [1337]`)
	idsInTask := writeFile(t, "task.hcl", `extra_proxy_uids = [2000]`)
	cases := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"unknown command", []string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{"unknown flag", []string{"rules", "--bogus"}, 2, "flag provided but not defined: -bogus"},
		{"missing --config", []string{"rules"}, 2, "--config FILE is required"},
		{"missing file", []string{"rules", "--config", "testdata/missing.hcl"}, 2, "testdata/missing.hcl: no such file"},
		{"bad field names field and value", []string{"rules", "--config", bad}, 2, `exclude_outbound_ip_ranges[0]: "10.0.0.0/33" is not a CIDR`},
		{"bad HCL", []string{"rules", "--config", badHCL}, 2, "parsing the config block"},
		{"bad alloc ID", []string{"rules", "--config", empty, "--alloc", "a b"}, 2, `--alloc: invalid alloc ID "a b"`},
		{"host and netns", []string{"rules", "--config", empty, "--host", "--netns", "/proc/self/ns/net"}, 2, "exclusive"},
		{"stray argument", []string{"rules", "--config", empty, "extra"}, 2, `unexpected argument "extra"`},
		{"missing netns", []string{"rules", "--config", empty, "--netns", "/nonexistent/ns"}, 2, "--netns: stat /nonexistent/ns"},
		{"apply needs a target", []string{"apply", "--config", empty}, 2, "give --netns PATH, or --host"},
		{"apply bad field", []string{"apply", "--config", bad, "--host"}, 2, "exclude_outbound_ip_ranges[0]"},
		{"cleanup missing netns", []string{"cleanup", "--netns", "/nonexistent/ns"}, 2, "--netns: stat /nonexistent/ns"},
		{"cleanup bad alloc", []string{"cleanup", "--alloc", "x'y"}, 2, "--alloc: invalid alloc ID"},
		{"status missing netns", []string{"status", "--netns", "/nonexistent/ns"}, 2, "--netns: stat /nonexistent/ns"},
		{"status stray argument", []string{"status", "now"}, 2, `unexpected argument "now"`},
		{"subcommand help", []string{"rules", "-h"}, 0, "Usage: istio-sidecar rules --config FILE"},
		{"missing plugin config", []string{"rules", "--config", empty, "--plugin-config", "testdata/missing.hcl"}, 2, "--plugin-config: open testdata/missing.hcl"},
		{"bad plugin field names the plugin file, field and value", []string{"rules", "--config", empty, "--plugin-config", badIDs}, 2,
			badIDs + ": plugin config: extra_proxy_uids[0]: 1337 is proxy_uid already"},
		{"extra IDs are no task config key", []string{"rules", "--config", idsInTask}, 2, `No argument or block type is named "extra_proxy_uids"`},
		{"apply bad plugin field", []string{"apply", "--config", empty, "--plugin-config", badIDs, "--host"}, 2, "extra_proxy_uids[0]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(c.args...)
			if code != c.code || !strings.Contains(stderr, c.stderr) {
				t.Errorf("exit %d, stderr %q; want exit %d and stderr naming %q", code, stderr, c.code, c.stderr)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
		})
	}
}

func TestVersionAndHelp(t *testing.T) {
	if code, stdout, _ := runCLI("version"); code != 0 || !strings.HasPrefix(stdout, "istio-sidecar ") {
		t.Errorf("version: exit %d, %q", code, stdout)
	}
	code, stdout, _ := runCLI("help")
	for _, want := range []string{"rules ", "apply ", "cleanup ", "status ", "Exit codes:", "2  usage or config error"} {
		if code != 0 || !strings.Contains(stdout, want) {
			t.Errorf("help: exit %d, lacks %q", code, want)
		}
	}
}

// TestRulesGolden: the payload for an empty config block is every default, in a group namespace, IPv4 only;
// with a plugin config, its extra proxy IDs and fleet interception block are in it too.
func TestRulesGolden(t *testing.T) {
	for _, c := range []struct{ golden string }{
		{"rules-empty"}, {"rules-plugin-config"},
	} {
		args := []string{"rules", "--config", "testdata/empty.hcl"}
		if c.golden == "rules-plugin-config" {
			args = []string{"rules", "--config", "testdata/loopback-dns.hcl", "--plugin-config", "testdata/plugin-extra-ids.hcl"}
		}
		t.Run(c.golden, func(t *testing.T) { checkGolden(t, "testdata/"+c.golden+".golden", args...) })
	}
}

func checkGolden(t *testing.T, golden string, args ...string) {
	code, stdout, stderr := runCLI(args...)
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if *update {
		if err := os.WriteFile(golden, []byte(stdout), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if stdout != string(want) {
		t.Errorf("%v differs from %s (run with -update after checking):\n%s", args, golden, stdout)
	}
}

// TestRulesHostMode: --host keeps the driver's host-safety ports out of capture both ways.
func TestRulesHostMode(t *testing.T) {
	code, stdout, stderr := runCLI("rules", "--config", "testdata/empty.hcl", "--host", "--alloc", "host-1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{
		"-A ISTIO_INBOUND -p tcp -m tcp --dport 22 ",
		"-A ISTIO_OUTPUT -p tcp -m tcp --dport 4646 ",
		"-A ISTIO_OUTPUT -p udp -m udp --dport 8600 ",
		`"istio-sidecar:alloc=host-1"`,
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("host-mode payload lacks %q", want)
		}
	}
	if !strings.HasPrefix(stdout, "# IPv4\n*nat\n") {
		t.Errorf("payload does not start with the IPv4 header:\n%s", stdout)
	}
}
