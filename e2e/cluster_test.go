//go:build e2e

package e2e

import (
	"fmt"
	"testing"

	"github.com/hashicorp/nomad/api"

	"github.com/istio-sidecar/istio-sidecar/e2e/harness"
)

// TestCluster_NodesReachEachOther proves the two-node harness the cross-node scenarios stand on: each client is
// a node with its own address (its node attribute and its services carry it), a bridge-mode group's port is
// reached from the other node at that address and the port Nomad mapped, and the host's own rules are untouched
// and its link and route to the nodes' network gone at the end.
func TestCluster_NodesReachEachOther(t *testing.T) {
	harness.RequireBridgeNetworking(t)
	before := harness.SnapshotRules(t, "")
	t.Cleanup(func() {
		if d := before.Diff(harness.SnapshotRules(t, "")); len(d) > 0 {
			t.Errorf("the cluster changed the host's rules:\n%v", d)
		}
		if left := harness.ClusterNetworkOnHost(); len(left) > 0 {
			t.Errorf("the cluster's network is still on the host: %v", left)
		}
	})
	c := harness.StartCluster(t, 2, harness.Options{})
	for i, n := range c.Nodes {
		if got := n.Node(t).Attributes["unique.network.ip-address"]; got != c.NodeIPs[i].String() {
			t.Errorf("node %s address %q, want %s", n.Name, got, c.NodeIPs[i])
		}
	}

	a, b := c.Nodes[0], c.Nodes[1]
	b.Register(t, b.ParseJobVars(t, "cluster-web.hcl", "", harness.Vars{"testapp_path": testappBin(t), "node": b.Name}))
	alloc := b.WaitAlloc(t, "cluster-web", api.AllocClientStatusRunning)
	reg := registrationOf(t, c.Server.Client, "cluster-web", alloc.ID)
	if reg.Address != c.NodeIPs[1].String() || reg.Port != hostPort(t, alloc, "http") {
		t.Errorf("registration %s:%d, want node B's %s and the mapped port %d", reg.Address, reg.Port, c.NodeIPs[1], hostPort(t, alloc, "http"))
	}
	url := fmt.Sprintf("http://%s:%d/", reg.Address, reg.Port)
	pollUntil(t, meshTimeout, "node A reaching B's group at "+url, func() (bool, string) {
		out, err := harness.InNetns(a.NodeNetns(), "curl", "-sf", "--max-time", "2", url)
		return err == nil, fmt.Sprintf("%q %v", out, err)
	})
	b.StopJob(t, "cluster-web")
}
