package harness

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/nomad/api"
)

const (
	// pollInterval is how often waits look again: short enough to keep the suite fast, long enough to keep the
	// agent's DEBUG log readable.
	pollInterval = 250 * time.Millisecond
	// driverTimeout bounds the wait for a driver's fingerprint. The client itself waits up to 50 s for a plugin's
	// first fingerprint before registering the node without it.
	driverTimeout = 60 * time.Second
)

// Wait polls check until it holds, failing the test on timeout, when the agent exits, or when t's context is done
// (the demo interrupted). check returns whether the condition holds and what it saw.
func (a *Agent) Wait(t T, timeout time.Duration, what string, check func() (bool, string)) {
	t.Helper()
	abort := func() error {
		if err := context.Cause(t.Context()); err != nil {
			return err
		}
		return a.exitedErr()
	}
	if err := poll(timeout, pollInterval, abort, what, check); err != nil {
		t.Fatalf("%v", err)
	}
}

func (a *Agent) waitLeader() error {
	return poll(startTimeout, pollInterval, a.exitedErr, "a cluster leader", func() (bool, string) {
		leader, err := a.Client.Status().Leader()
		if err != nil {
			return false, err.Error()
		}
		return leader != "", "no leader yet"
	})
}

// WaitLeader waits until the server has elected itself leader.
func (a *Agent) WaitLeader(t T) {
	t.Helper()
	if err := a.waitLeader(); err != nil {
		t.Fatalf("%v", err)
	}
}

// WaitNodeReady waits until this agent's client node is registered, ready and eligible, records its ID in NodeID
// and returns it.
func (a *Agent) WaitNodeReady(t T) *api.Node {
	t.Helper()
	var node *api.Node
	a.Wait(t, startTimeout, "node "+a.Name+" ready", func() (bool, string) {
		stubs, _, err := a.Client.Nodes().List(nil)
		if err != nil {
			return false, err.Error()
		}
		for _, s := range stubs {
			if s.Name != a.Name {
				continue
			}
			if s.Status != api.NodeStatusReady || s.SchedulingEligibility != api.NodeSchedulingEligible {
				return false, fmt.Sprintf("node %s is %s, %s", s.ID, s.Status, s.SchedulingEligibility)
			}
			n, _, err := a.Client.Nodes().Info(s.ID, nil)
			if err != nil {
				return false, err.Error()
			}
			node = n
			return true, ""
		}
		return false, fmt.Sprintf("node not registered (%d other nodes)", len(stubs))
	})
	a.NodeID = node.ID
	return node
}

// Node returns this agent's node as the servers see it now.
func (a *Agent) Node(t T) *api.Node {
	t.Helper()
	node, _, err := a.Client.Nodes().Info(a.NodeID, nil)
	if err != nil {
		t.Fatalf("reading node %s: %v", a.NodeID, err)
	}
	return node
}

// WaitDriver waits until the node reports the driver detected and with the given health, and returns its info.
func (a *Agent) WaitDriver(t T, name string, healthy bool) *api.DriverInfo {
	t.Helper()
	what := fmt.Sprintf("driver %s detected and healthy=%t", name, healthy)
	return a.WaitDriverInfo(t, name, what, func(d *api.DriverInfo) bool { return d.Detected && d.Healthy == healthy })
}

// WaitDriverInfo waits until the node's info for the driver satisfies ok, and returns it. Use it for states other
// than WaitDriver's, such as a particular health description.
func (a *Agent) WaitDriverInfo(t T, name, what string, ok func(*api.DriverInfo) bool) *api.DriverInfo {
	t.Helper()
	var info *api.DriverInfo
	a.Wait(t, driverTimeout, what, func() (bool, string) {
		node, _, err := a.Client.Nodes().Info(a.NodeID, nil)
		if err != nil {
			return false, err.Error()
		}
		d, found := node.Drivers[name]
		if !found || d == nil {
			return false, fmt.Sprintf("driver %s not fingerprinted yet (node has %s)", name, driverNames(node))
		}
		info = d
		return ok(d), DescribeDriver(d)
	})
	return info
}

// DescribeDriver renders a driver's info for test messages.
func DescribeDriver(d *api.DriverInfo) string {
	return fmt.Sprintf("detected=%t healthy=%t description=%q attributes=%v",
		d.Detected, d.Healthy, d.HealthDescription, d.Attributes)
}

func driverNames(node *api.Node) []string {
	names := make([]string, 0, len(node.Drivers))
	for name := range node.Drivers {
		names = append(names, name)
	}
	return names
}
