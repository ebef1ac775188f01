//go:build e2e

package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/api"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/istio-sidecar/istio-sidecar/controller/identity"
	"github.com/istio-sidecar/istio-sidecar/e2e/harness"
	"github.com/istio-sidecar/istio-sidecar/internal/controlplane"
)

// meshEnv is a mesh on Nomad for a scenario: the control plane, the agents whose clients run A and B, and the
// registration's API-server client. A scenario registers and waits through either agent, pins its jobs to
// A.Name or B.Name, and takes every address from Nomad: A and B may or may not share a node.
type meshEnv struct {
	CP   *controlplane.ControlPlane
	A, B *harness.Agent
	// Dyn reads and writes Istio's objects as the controller's identity.
	Dyn dynamic.Interface
}

// meshCluster starts two Nomad clients, each in a network namespace of its own with its own address, and one
// server (harness.StartCluster); the control plane on the host, istiod's xDS and CA on the host's address on the
// nodes' network; the plugin on both clients pointed at it with the xDS stand-in Envoy; and the controller's
// identity side and registration in the test. A runs on the first node, B on the second.
func meshCluster(t *testing.T) *meshEnv {
	t.Helper()
	harness.RequireBridgeNetworking(t)
	nodes := harness.NewClusterNetwork(t)
	cp := controlplane.Start(t, controlplane.BinariesFromEnv(t), controlplane.Options{IstiodIP: nodes.HostIP})
	cp.Kubectl(t, "", "label", "namespace", "default", "istio-sidecar.io/mesh=true")
	opts := pluginOptions(t)
	opts.Name = "mesh"
	opts.PluginConfig["envoy_path"] = harness.XDSStandinBin(t)
	opts.PluginConfig["istiod_san"] = cp.IstiodSAN
	opts.PluginConfig["cluster_id"] = cp.ClusterID
	c := nodes.Start(t, 2, opts)
	for _, n := range c.Nodes {
		n.WaitDriver(t, harness.PluginName, true)
	}
	startIdentity(t, cp, c.Server.Client)
	dyn := startRegistration(t, cp, c.Server.Client)
	return &meshEnv{CP: cp, A: c.Nodes[0], B: c.Nodes[1], Dyn: dyn}
}

// startIdentity runs the controller's identity side in the test: each meshed group's Variable with a token,
// the mesh root and istiod's address.
func startIdentity(t *testing.T, cp *controlplane.ControlPlane, nomad *api.Client) {
	t.Helper()
	_, kube := controllerClients(t, cp)
	c, err := identity.New(identity.Config{Nomad: nomad, Kube: kube, RootCert: string(cp.RootCert),
		DiscoveryAddress: cp.Istiod.String(), TTL: time.Hour, RefreshBefore: 20 * time.Minute, Resync: time.Minute,
		Log: hclog.New(&hclog.LoggerOptions{Name: "identity", Output: testWriter{t}})})
	if err != nil {
		t.Fatal(err)
	}
	runUntilCleanup(t, c.Run)
}

// controllerClients are API-server clients with the controller's identity (its kubeconfig).
func controllerClients(t *testing.T, cp *controlplane.ControlPlane) (dynamic.Interface, kubernetes.Interface) {
	t.Helper()
	rc, dyn := dynamicClient(t, cp.ControllerKubeconfig)
	kube, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	return dyn, kube
}

// runUntilCleanup runs a controller in the test until the test ends, and waits for it to return.
func runUntilCleanup(t *testing.T, run func(context.Context)) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}
