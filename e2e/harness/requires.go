package harness

import (
	"os"
	"path/filepath"

	"github.com/istio-sidecar/istio-sidecar/internal/testenv"
)

// RequireRoot ends the test unless it runs as root, which a Nomad client needs for alloc dirs, cgroups and
// network namespaces: a skip, or a failure under `make test` (testenv.SkipOrFail).
func RequireRoot(t testenv.TB) {
	t.Helper()
	testenv.RequireRoot(t, "the Nomad client manages cgroups, alloc dirs and network namespaces; run the e2e suite as root")
}

// RequireBridgeNetworking ends the test, as RequireRoot does, unless bridge-mode allocations can work here: root,
// the CNI plugins Nomad's bridge network uses in /usr/lib/cni, and iptables (the bridge and firewall plugins and
// the driver's redirection all call it).
func RequireBridgeNetworking(t testenv.TB) {
	t.Helper()
	RequireRoot(t)
	for _, plugin := range []string{"loopback", "bridge", "host-local", "firewall", "portmap"} {
		if _, err := os.Stat(filepath.Join(cniPath, plugin)); err != nil {
			testenv.SkipOrFail(t, "needs the CNI plugin %s in %s for bridge networking (Debian: containernetworking-plugins): %v",
				plugin, cniPath, err)
		}
	}
	testenv.RequireTools(t, "iptables", "iptables-save", "iptables-restore")
}
