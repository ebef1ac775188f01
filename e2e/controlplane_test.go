//go:build e2e

package e2e

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/nomad/api"

	"github.com/istio-sidecar/istio-sidecar/e2e/harness"
	"github.com/istio-sidecar/istio-sidecar/internal/testenv"
)

const (
	// The control plane's Nomad namespace and jobs (example/control-plane/).
	cpNamespace = "istio-system"
	istiodJob   = "istiod"
	// The guide's meshed job, the bridge example, and the identity its jobspec claims.
	guideMeshedJob = "meshed-app-bridge"
	guideSPIFFEID  = "spiffe://cluster.local/ns/default/sa/meshed-app"
	// istiodGRPCPort is istiod's static xDS and CA port.
	istiodGRPCPort = 15012
)

// controlPlane is the one control plane of a test binary run: an ACL-enabled agent that ran the guide.
type controlPlane struct {
	agent *harness.Agent
	// nodeIP is the client's address, where the control plane's static ports are.
	nodeIP string
	// meshedAlloc is the guide's meshed bridge-mode allocation.
	meshedAlloc *api.Allocation
	// identityBlock is the guide's last block (the identity it shows), run once the certificate is there.
	identityBlock harness.GuideBlock
	settings      harness.GuideBlock
	env           []string
}

// TestControlPlane runs example/control-plane.md on a fresh ACL-enabled agent (etcd, the API server, istiod
// and the controller as Nomad jobs, the bootstrap as the operator runs it) and then proves, on that one control
// plane, what the mesh promises. It is one test because the control plane takes minutes to start on two cores:
// the proofs run in order of value, each a subtest.
func TestControlPlane(t *testing.T) {
	cp := startControlPlane(t)
	t.Run("A_IdentityFromIstiod", cp.testIdentityFromIstiod)
	t.Run("B_RefusedNamespaceSaysWhy", cp.testRefusedNamespace)
	t.Run("E_IstiodKilled", cp.testIstiodKilled)
	t.Run("C_OtherJobCannotReadToken", cp.testOtherJobCannotReadToken)
	// Last: it re-runs the controller job, and its token churn and CSRs load the two cores.
	t.Run("D_Rotation", cp.testRotation)
}

// startControlPlane starts the agent as the guide's step 0 does and runs the guide's blocks up to the meshed
// job; the last block (the identity) runs in proof A.
func startControlPlane(t testing.TB) *controlPlane {
	t.Helper()
	harness.RequireBridgeNetworking(t)
	bins := harness.ControlPlaneBinaries(t)
	controller := harness.ControllerBin(t)
	nodeIP := defaultRouteIP(t)
	etcdData := etcdDataDir(t)
	agent := harness.Start(t, controlPlaneOptions(t, nodeIP, etcdData, bins.Etcd))
	agent.WaitDriver(t, harness.PluginName, true)
	if got := agent.Node(t).Attributes["unique.network.ip-address"]; got != nodeIP {
		t.Fatalf("the client advertises %s, not %s: the plugin's discovery_address would miss istiod", got, nodeIP)
	}
	cp := &controlPlane{agent: agent, nodeIP: nodeIP}
	cp.env = harness.GuideEnv(agent, map[string]string{
		"ETCD":            bins.Etcd,
		"KUBE_APISERVER":  bins.KubeAPIServer,
		"PILOT_DISCOVERY": bins.PilotDiscovery,
		"CONTROLLER":      controller,
		"TESTAPP":         testappBin(t),
		"MESH_DIR":        filepath.Join(t.TempDir(), "mesh"),
		"NODE_IP":         nodeIP,
		"DRIVER":          "raw_exec",
	})
	// The first block is the guide's settings, which the later ones use as the operator's shell would have
	// them: each block runs after it, in one bash.
	blocks := harness.GuideBlocks(t)
	cp.settings = blocks[0]
	for _, b := range blocks[1 : len(blocks)-1] {
		harness.RunGuideBlock(t, cp.settings, b, cp.env)
	}
	cp.identityBlock = blocks[len(blocks)-1]
	cp.meshedAlloc = agent.WaitAlloc(t, guideMeshedJob, api.AllocClientStatusRunning)
	agent.WaitTaskState(t, cp.meshedAlloc.ID, proxyTask, harness.TaskStateRunning)
	return cp
}

// controlPlaneOptions are the guide's agent (dev-agent.hcl: ACLs, raw_exec, etcd's host volume) with the plugin
// pointed at this control plane, the stand-in Envoy that takes its listeners and certificates from istiod, and
// the build cache inside exec's chroot, where etcd runs.
func controlPlaneOptions(t testing.TB, nodeIP, etcdData, etcdBin string) harness.Options {
	opts := pluginOptions(t)
	opts.Name = "cp"
	opts.ACL = true
	opts.PluginConfig["envoy_path"] = harness.XDSStandinBin(t)
	// Short-lived workload certificates, renewed every minute: what the rotation proof watches.
	opts.PluginConfig["workload_cert_ttl"] = workloadCertTTL
	// The fallback when a group's Variable carries no istiod address: this node, istiod's static port.
	opts.PluginConfig["discovery_address"] = net.JoinHostPort(nodeIP, fmt.Sprint(istiodGRPCPort))
	opts.ClientHCL = harness.ControlPlaneClientHCL(etcdData, filepath.Dir(etcdBin))
	return opts
}

// etcdDataDir is etcd's host volume (harness.EtcdDataDir) in the test's temporary directory.
func etcdDataDir(t testing.TB) string {
	dir, err := harness.EtcdDataDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// defaultRouteIP is the address Nomad's client advertises services on (harness.DefaultRouteIP).
func defaultRouteIP(t testing.TB) string {
	t.Helper()
	ip, err := harness.DefaultRouteIP()
	if err != nil {
		testenv.SkipOrFail(t, "%v", err)
	}
	return ip
}

// runIdentityBlock runs the guide's last block and checks it shows the jobspec's SPIFFE ID.
func (cp *controlPlane) runIdentityBlock(t *testing.T) {
	out := harness.RunGuideBlock(t, cp.settings, cp.identityBlock, cp.env)
	if !strings.Contains(out, guideSPIFFEID) {
		t.Errorf("%s:%d shows no %s", harness.GuideFile, cp.identityBlock.Line, guideSPIFFEID)
	}
}
