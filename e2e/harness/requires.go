package harness

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// RequireRoot skips the test unless it runs as root, which a Nomad client needs for alloc dirs, cgroups and
// network namespaces.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the Nomad client manages cgroups, alloc dirs and network namespaces; run the e2e suite as root")
	}
}

// RequireBridgeNetworking skips the test unless bridge-mode allocations can work here: root, the CNI plugins
// Nomad's bridge network uses in /usr/lib/cni, and iptables (the bridge and firewall plugins and the driver's
// redirection all call it).
func RequireBridgeNetworking(t testing.TB) {
	t.Helper()
	RequireRoot(t)
	for _, plugin := range []string{"loopback", "bridge", "host-local", "firewall", "portmap"} {
		if _, err := os.Stat(filepath.Join(cniPath, plugin)); err != nil {
			t.Skipf("needs the CNI plugin %s in %s for bridge networking (Debian: containernetworking-plugins): %v",
				plugin, cniPath, err)
		}
	}
	for _, tool := range []string{"iptables", "iptables-save", "iptables-restore"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s for bridge networking and traffic redirection: %v", tool, err)
		}
	}
}
