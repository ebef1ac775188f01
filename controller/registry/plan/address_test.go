package plan

import (
	"testing"

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
	const nsAddr = "172.26.64.5" // a bridge namespace's address; the allocations' ports are at 10.0.0.1
	s := scenario()
	s.Services[0].Address = nsAddr // meshed Web of aaaaaaaa-1111, healthy
	s.Services[3].Address = nsAddr // plain db of dddddddd-4444
	r := Plan(s, Options{Domain: "cluster.local"})
	for _, o := range r.Objects {
		if a, _, _ := unstructured.NestedString(o.Object, "spec", "address"); a == nsAddr {
			t.Errorf("%s %s/%s is at %s, not its allocation's node address 10.0.0.1", o.GetKind(), o.GetNamespace(), o.GetName(), nsAddr)
		}
		eps, _, _ := unstructured.NestedSlice(o.Object, "spec", "endpoints")
		for _, e := range eps {
			if m, _ := e.(map[string]any); m["address"] == nsAddr {
				t.Errorf("%s %s/%s has endpoint %v, not at its allocation's node address 10.0.0.1", o.GetKind(), o.GetNamespace(), o.GetName(), m)
			}
		}
	}
}
