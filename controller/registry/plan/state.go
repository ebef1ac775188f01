// Package plan says which WorkloadEntries and ServiceEntries the mesh should hold for what Nomad runs: one
// WorkloadEntry per running, healthy allocation of a meshed group with services, one ServiceEntry per Nomad
// service name, and for services without a sidecar a ServiceEntry with their registrations as plaintext
// endpoints. Pure: no Nomad, no API server.
package plan

import (
	"github.com/hashicorp/nomad/api"

	"github.com/istio-sidecar/istio-sidecar/controller/identity/policy"
)

// State is what the controller read from Nomad.
type State struct {
	// Jobs by Nomad namespace and job ID: the groups' task configs say which are meshed and how.
	Jobs map[[2]string]*api.Job
	// Allocs by ID, listed with their resources (the mapped ports).
	Allocs map[string]*api.AllocationListStub
	// Services are every provider=nomad registration outside istio-system.
	Services []*api.ServiceRegistration
	// Checks are the results of the Nomad checks of the meshed allocations, by allocation ID.
	Checks map[string]api.AllocCheckStatuses
}

// Options are the operator's choices.
type Options struct {
	// Domain is the mesh's DNS suffix (the hosts are <service>.<namespace>.svc.<domain>).
	Domain string
	// Policy says which Nomad namespace may claim which Istio namespace; nil is the default.
	Policy *policy.Policy
}

// Labels the controller writes.
const (
	// ManagedBy marks every object the controller owns; it deletes only objects carrying it.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedBy      = "istio-sidecar-controller"
	// ServiceLabelPrefix + <service> = "true" on a WorkloadEntry puts it behind that service's ServiceEntry.
	ServiceLabelPrefix = "service.istio-sidecar.io/"
	// Where in Nomad an object comes from, for people reading the API server.
	NomadNamespaceLabel = "istio-sidecar.io/nomad-namespace"
	NomadJobLabel       = "istio-sidecar.io/nomad-job"
	NomadGroupLabel     = "istio-sidecar.io/nomad-group"
	NomadAllocAnno      = "istio-sidecar.io/nomad-alloc-id"
	tlsModeLabel        = "security.istio.io/tlsMode"
)
