package netfilter

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The tools come from ToolPath, never from the plugin's own PATH: a directory early in it must not be able to
// stand in for iptables-restore, which runs as root with the payload on its stdin.
func TestRun_ToolsComeFromToolPathNotThePluginsPath(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran")
	fake := "#!/bin/sh\necho fake; touch " + marker + "\n"
	if err := os.WriteFile(filepath.Join(dir, "ip"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+":"+os.Getenv("PATH"))
	out, err := run(t.Context(), "", "", "ip", "-V")
	if err != nil {
		t.Fatalf("ip -V: %v", err)
	}
	if _, err := os.Stat(marker); err == nil || strings.Contains(out, "fake") {
		t.Fatalf("the plugin's PATH chose the tool: %q", out)
	}
}

func TestRun_MissingToolIsNamedWithWhereItWasLookedFor(t *testing.T) {
	_, err := run(t.Context(), "", "", "iptables-no-such-flavour-save")
	if err == nil || !strings.Contains(err.Error(), `"iptables-no-such-flavour-save" not found in /usr/sbin:/usr/bin:/sbin:/bin`) {
		t.Fatalf("got %v", err)
	}
}
