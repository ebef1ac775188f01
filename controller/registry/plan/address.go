package plan

import (
	"fmt"

	"github.com/hashicorp/nomad/api"
)

// addressRefusal says why a registration's address is not one Nomad's host address mode gives the allocation,
// or "" when it is. That address is the HostIP of the port the service maps (the node's, in bridge and host
// mode alike), or for a service without a port the address of the allocation's network on its node. Anything
// else is the job author's choice (the service's `address`, `address_mode = "alloc"` or "driver"): a bridge
// namespace's 172.26.64.x repeats on every node, and istiod lends an entry's labels to whichever proxy of its
// Istio namespace sits at its address, so such an entry would change which policies select another workload.
func addressRefusal(a *api.AllocationListStub, reg *api.ServiceRegistration, job *api.Job) string {
	node := nodeAddresses(a, reg.Port)
	for _, ip := range node {
		if ip == reg.Address {
			return ""
		}
	}
	where := fmt.Sprintf("the node address Nomad mapped its port %d on", reg.Port)
	if reg.Port == 0 {
		where = "its network's node address"
	}
	return fmt.Sprintf("service %q of job %s/%s, group %s: allocation %s is registered at address %q, not at "+
		"%s (%q); %s is not registered; left out", reg.ServiceName, reg.Namespace, reg.JobID, a.TaskGroup, a.ID,
		reg.Address, where, node, chosenAddress(job, a.TaskGroup, reg.ServiceName))
}

// nodeAddresses are the addresses Nomad's host address mode registers a service of the allocation at: the
// HostIP of each of its ports numbered port (a task-level network's address for its own ports), or with no
// port the address of each of its networks.
func nodeAddresses(a *api.AllocationListStub, port int) []string {
	if a.AllocatedResources == nil {
		return nil
	}
	var out []string
	res := a.AllocatedResources
	for _, p := range res.Shared.Ports {
		if port != 0 && p.Value == port && p.HostIP != "" {
			out = append(out, p.HostIP)
		}
	}
	var nets []*api.NetworkResource
	if port == 0 {
		nets = append(nets, res.Shared.Networks...) // with a port, a group network's are the shared ports above
	}
	for _, t := range res.Tasks {
		if t != nil {
			nets = append(nets, t.Networks...)
		}
	}
	for _, n := range nets {
		if n != nil && n.IP != "" && (port == 0 || hasPort(n, port)) {
			out = append(out, n.IP)
		}
	}
	return out
}

func hasPort(n *api.NetworkResource, port int) bool {
	for _, p := range append(append([]api.Port(nil), n.ReservedPorts...), n.DynamicPorts...) {
		if p.Value == port {
			return true
		}
	}
	return false
}

// chosenAddress names what in the jobspec chose another address, when the service is found under its name
// (an interpolated name is not).
func chosenAddress(job *api.Job, group, name string) string {
	var tg *api.TaskGroup
	if job != nil {
		tg = taskGroup(job, group)
	}
	if tg != nil {
		services := tg.Services
		for _, t := range tg.Tasks {
			services = append(services, t.Services...)
		}
		for _, s := range services {
			switch {
			case s == nil || s.Name != name:
			case s.Address != "":
				return fmt.Sprintf("its address = %q", s.Address)
			case s.AddressMode != "" && s.AddressMode != "auto" && s.AddressMode != "host":
				return fmt.Sprintf("its address_mode = %q", s.AddressMode)
			}
		}
	}
	return "an address other than the node's (a service's address, or an address_mode other than host)"
}
