//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"testing"

	"github.com/hashicorp/nomad/api"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/istio-sidecar/istio-sidecar/controller/registry/apply"
	"github.com/istio-sidecar/istio-sidecar/e2e/harness"
)

// waitDump polls the proxy's config_dump in the allocation's namespace until cond holds of it, and returns it.
func waitDump(t *testing.T, allocID, what string, cond func(*harness.ConfigDump) (bool, string)) *harness.ConfigDump {
	t.Helper()
	var dump *harness.ConfigDump
	pollUntil(t, meshTimeout, what, func() (bool, string) {
		d, err := harness.FetchConfigDump(allocID)
		if err != nil {
			return false, err.Error()
		}
		dump = d
		return cond(d)
	})
	return dump
}

// waitEndpoints waits until the proxy's endpoints of cluster are exactly want (none: an empty or absent
// cluster).
func waitEndpoints(t *testing.T, allocID, cluster string, want []netip.AddrPort) {
	t.Helper()
	want = sortedAddrs(want)
	waitDump(t, allocID, fmt.Sprintf("endpoints %v of %s in allocation %s's proxy", want, cluster, allocID),
		func(d *harness.ConfigDump) (bool, string) {
			got := d.EndpointAddrs(cluster)
			return slices.Equal(got, want), fmt.Sprintf("endpoints %v (all, with health: %v)", got, d.ClusterEndpoints(cluster))
		})
}

func sortedAddrs(in []netip.AddrPort) []netip.AddrPort {
	out := slices.Clone(in)
	sort.Slice(out, func(i, j int) bool { return out[i].Compare(out[j]) < 0 })
	return out
}

// registeredEndpoint is where Nomad says other nodes reach the allocation's service: its registration's address
// and port, which must be the node address and host port the allocation was given for the port label.
func registeredEndpoint(t *testing.T, agent *harness.Agent, service string, alloc *api.Allocation, label string) netip.AddrPort {
	t.Helper()
	reg := registrationOf(t, agent.Client, service, alloc.ID)
	ap, err := netip.ParseAddrPort(fmt.Sprintf("%s:%d", reg.Address, reg.Port))
	if err != nil {
		t.Fatalf("registration of %s: %v", service, err)
	}
	for _, p := range alloc.AllocatedResources.Shared.Ports {
		if p.Label == label && (p.HostIP != reg.Address || p.Value != reg.Port) {
			t.Fatalf("%s is registered at %s, but allocation %s has port %s at %s:%d", service, ap, alloc.ID, label, p.HostIP, p.Value)
		}
	}
	return ap
}

// runningAllocs waits until the job has exactly n allocations meant to run, each running with all its tasks,
// and returns them.
func runningAllocs(t *testing.T, agent *harness.Agent, jobID string, n int) []*api.Allocation {
	t.Helper()
	var ids []string
	pollUntil(t, meshTimeout, fmt.Sprintf("%d running allocations of %s", n, jobID), func() (bool, string) {
		stubs, _, err := agent.Client.Jobs().Allocations(jobID, false, nil)
		if err != nil {
			return false, err.Error()
		}
		ids = ids[:0]
		wanted := 0
		for _, s := range stubs {
			if s.DesiredStatus != api.AllocDesiredStatusRun {
				continue
			}
			wanted++
			if harness.AllTasksRunning(s) {
				ids = append(ids, s.ID)
			}
		}
		return len(ids) == n && wanted == n, fmt.Sprintf("%d of %d allocations meant to run are running", len(ids), wanted)
	})
	out := make([]*api.Allocation, 0, n)
	for _, id := range ids {
		al, _, err := agent.Client.Allocations().Info(id, nil)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, al)
	}
	return out
}

// waitDeployment waits until the job's latest deployment is successful: Nomad refuses to scale a job while
// one is active.
func waitDeployment(t *testing.T, agent *harness.Agent, jobID string) {
	t.Helper()
	pollUntil(t, meshTimeout, "the latest deployment of "+jobID+" successful", func() (bool, string) {
		d, _, err := agent.Client.Jobs().LatestDeployment(jobID, nil)
		if err != nil || d == nil {
			return false, fmt.Sprintf("no deployment: %v", err)
		}
		return d.Status == api.DeploymentStatusSuccessful, d.Status + ": " + d.StatusDescription
	})
}

// allocatedAddress is the address istiod allocated to the ServiceEntry (status.addresses), which the DNS proxy
// answers for its host.
func allocatedAddress(t *testing.T, env *meshEnv, name string) netip.Addr {
	t.Helper()
	var addr netip.Addr
	pollUntil(t, meshTimeout, "an address istiod allocated to ServiceEntry "+name, func() (bool, string) {
		o, err := env.Dyn.Resource(apply.Resources["ServiceEntry"]).Namespace("default").Get(context.Background(), name, getOpts)
		if err != nil {
			return false, err.Error()
		}
		addrs, _, _ := unstructured.NestedSlice(o.Object, "status", "addresses")
		for _, a := range addrs {
			m, _ := a.(map[string]any)
			if v, err := netip.ParseAddr(fmt.Sprint(m["value"])); err == nil && v.Is4() {
				addr = v
				return true, ""
			}
		}
		return false, fmt.Sprintf("status.addresses %v", addrs)
	})
	return addr
}

// chainsSay summarises a listener's filter chains for a failure message.
func chainsSay(chains []harness.FilterChain) string {
	s := ""
	for _, c := range chains {
		s += fmt.Sprintf("\n  %+v", c)
	}
	return s
}
