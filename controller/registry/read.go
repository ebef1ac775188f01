package registry

import (
	"context"
	"fmt"

	"github.com/hashicorp/nomad/api"

	"github.com/istio-sidecar/istio-sidecar/controller/identity/policy"
	"github.com/istio-sidecar/istio-sidecar/controller/registry/plan"

	"github.com/istio-sidecar/istio-sidecar/controller/nomaderr"
)

// readAll lists what registration depends on: every provider=nomad service registration the controller's
// token may read (istio-system is denied to it), the running allocations with their mapped ports, and the
// jobs they belong to.
func (c *Controller) readAll(ctx context.Context) (plan.State, error) {
	q := func(ns string) *api.QueryOptions { return (&api.QueryOptions{Namespace: ns}).WithContext(ctx) }
	s := plan.State{Jobs: map[[2]string]*api.Job{}, Allocs: map[string]*api.AllocationListStub{},
		Checks: map[string]api.AllocCheckStatuses{}}
	lists, _, err := c.cfg.Nomad.Services().List(q("*"))
	if err != nil {
		return s, fmt.Errorf("listing services: %w", err)
	}
	for _, l := range lists {
		if l.Namespace == policy.Reserved {
			continue
		}
		for _, stub := range l.Services {
			regs, _, err := c.cfg.Nomad.Services().Get(stub.ServiceName, q(l.Namespace))
			if err != nil {
				return s, fmt.Errorf("reading service %s in namespace %s: %w", stub.ServiceName, l.Namespace, err)
			}
			s.Services = append(s.Services, regs...)
		}
	}
	aq := q("*")
	aq.Params = map[string]string{"resources": "true"}
	aq.Filter = `ClientStatus == "running"`
	allocs, _, err := c.cfg.Nomad.Allocations().List(aq)
	if err != nil {
		return s, fmt.Errorf("listing allocations: %w", err)
	}
	for _, a := range allocs {
		s.Allocs[a.ID] = a
	}
	for _, reg := range s.Services {
		k := [2]string{reg.Namespace, reg.JobID}
		if _, done := s.Jobs[k]; done {
			continue
		}
		job, _, err := c.cfg.Nomad.Jobs().Info(reg.JobID, q(reg.Namespace))
		// Not found: deregistered between listing its services and reading it.
		if err != nil && !nomaderr.NotFound(err) {
			return s, fmt.Errorf("reading job %s in namespace %s: %w", reg.JobID, reg.Namespace, err)
		}
		s.Jobs[k] = job
	}
	return s, nil
}

// readChecks refreshes the Nomad check results of the meshed allocations that have services. Nomad emits no
// event when a check changes, so these are polled; an allocation whose results cannot be read has none, and
// so is not an endpoint until they can.
func (c *Controller) readChecks(ctx context.Context, s *plan.State) {
	s.Checks = map[string]api.AllocCheckStatuses{}
	seen := map[string]bool{}
	for _, reg := range s.Services {
		a := s.Allocs[reg.AllocID]
		if a == nil || seen[a.ID] || !plan.Meshed(*s, a) {
			continue
		}
		seen[a.ID] = true
		checks, err := c.cfg.Nomad.Allocations().Checks(a.ID, (&api.QueryOptions{Namespace: a.Namespace}).WithContext(ctx))
		if err != nil {
			c.cfg.Log.Warn("reading the allocation's checks; not an endpoint meanwhile", "alloc", a.ID, "error", err)
			continue
		}
		s.Checks[a.ID] = checks
	}
}
