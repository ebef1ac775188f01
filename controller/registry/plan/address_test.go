package plan

import (
	"strings"
	"testing"

	"github.com/hashicorp/nomad/api"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// A job author sets a registration's address (the service block's `address`, or `address_mode = "alloc"`, which
// registers the group namespace's 172.26.64.x address). Every node's bridge hands out the same 172.26.64.0/20,
// and a bridge sidecar's INSTANCE_IP is its namespace's address, which istiod matches WorkloadEntries and
// ServiceEntry endpoints against (GetProxyWorkloadLabels): an endpoint written at 172.26.64.5 lends its labels
// to every proxy at 172.26.64.5 in that Istio namespace, on any node, and changes which AuthorizationPolicy and
// PeerAuthentication select it. Only the address Nomad mapped the allocation's port on (its node's) is one
// another node reaches, as the issue asks; anything else should be left out with a warning naming the field.
func TestPlan_RegistrationAddressIsTheAllocationsNodeAddress(t *testing.T) {
	const nsAddr = "172.26.64.5" // a bridge namespace's address; the allocations' ports are at 10.0.0.1 and .4
	s := scenario()
	s.Services[0].Address = nsAddr // meshed Web of aaaaaaaa-1111, healthy
	s.Services[3].Address = nsAddr // plain db of dddddddd-4444
	s.Jobs[[2]string{"shop", "db"}].TaskGroups[0].Services[0].AddressMode = "alloc"
	r := Plan(s, Options{Domain: "cluster.local"})
	for _, o := range r.Objects {
		if a, _, _ := unstructured.NestedString(o.Object, "spec", "address"); a == nsAddr {
			t.Errorf("%s %s/%s is at %s, not its allocation's node address 10.0.0.1", o.GetKind(), o.GetNamespace(), o.GetName(), nsAddr)
		}
		eps, _, _ := unstructured.NestedSlice(o.Object, "spec", "endpoints")
		for _, e := range eps {
			if m, _ := e.(map[string]any); m["address"] == nsAddr {
				t.Errorf("%s %s/%s has endpoint %v, not at its allocation's node address", o.GetKind(), o.GetNamespace(), o.GetName(), m)
			}
		}
	}
	for _, want := range []string{
		`service "Web" of job shop/web, group frontend: allocation aaaaaaaa-1111 is registered at address "172.26.64.5"`,
		`service "db" of job shop/db, group db: allocation dddddddd-4444 is registered at address "172.26.64.5"`,
	} {
		if !warned(r, want) {
			t.Errorf("no warning %q in %q", want, r.Warnings)
		}
	}
	if !warned(r, `its address_mode = "alloc" is not registered`) {
		t.Errorf("no warning names the db service's address_mode: %q", r.Warnings)
	}
	// Nomad's own choices stay: the scenario as Nomad registers it has both.
	got := kinds(Plan(scenario(), Options{Domain: "cluster.local"}))
	if got["WorkloadEntry shop/web-frontend-aaaaaaaa"] == nil || got["ServiceEntry shop/db"] == nil {
		t.Errorf("registrations at their node addresses left out: %v", got)
	}
}

// A meshed allocation's one WorkloadEntry holds every service of it at one address: one service at a chosen
// address leaves out the whole entry, not just that port.
func TestPlan_OneChosenAddressLeavesOutTheAllocation(t *testing.T) {
	s := scenario()
	shared := &s.Allocs["aaaaaaaa-1111"].AllocatedResources.Shared
	shared.Ports = append(shared.Ports, api.PortMapping{Label: "admin", Value: 25009, HostIP: "10.0.0.1"})
	s.Services = append(s.Services, reg("r5", "web-admin", "web", "aaaaaaaa-1111", "172.26.64.5", 25009))
	if we := kinds(Plan(s, Options{Domain: "cluster.local"}))["WorkloadEntry shop/web-frontend-aaaaaaaa"]; we != nil {
		t.Errorf("a WorkloadEntry with a service at a chosen address: %v", we.Object["spec"])
	}
}

// A service without a port is registered at its allocation's network address (Nomad's host mode); the
// namespace's address (address_mode = "alloc" with no port) is not.
func TestPlan_PortlessServiceAtTheNetworksAddress(t *testing.T) {
	s := scenario()
	s.Allocs["dddddddd-4444"].AllocatedResources.Shared.Networks = []*api.NetworkResource{{Mode: "bridge", IP: "10.0.0.4"}}
	s.Services = []*api.ServiceRegistration{reg("r6", "db", "db", "dddddddd-4444", "10.0.0.4", 0)}
	if kinds(Plan(s, Options{Domain: "cluster.local"}))["ServiceEntry shop/db"] == nil {
		t.Errorf("a portless service at its network's address left out")
	}
	s.Services[0].Address = "172.26.64.5"
	r := Plan(s, Options{Domain: "cluster.local"})
	if se := kinds(r)["ServiceEntry shop/db"]; se != nil {
		t.Errorf("a portless service at the namespace's address registered: %v", se.Object["spec"])
	}
	if !warned(r, `is registered at address "172.26.64.5", not at its network's node address (["10.0.0.4"])`) {
		t.Errorf("warnings %q", r.Warnings)
	}
}

func warned(r Result, part string) bool {
	for _, w := range r.Warnings {
		if strings.Contains(w, part) {
			return true
		}
	}
	return false
}
