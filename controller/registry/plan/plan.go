package plan

import (
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/nomad/api"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	identity "github.com/istio-sidecar/istio-sidecar/controller/identity/plan"
	"github.com/istio-sidecar/istio-sidecar/driver/istio"
)

// Result is the desired objects, sorted by kind, namespace and name, and what was wrong with Nomad's state
// (each warning names the job, group or service and the field).
type Result struct {
	Objects  []*unstructured.Unstructured
	Warnings []string
}

// service gathers one ServiceEntry: a Nomad service name in one Istio namespace.
type service struct {
	namespace, name string
	meshed          bool
	protocol        string
	number          int // the port as clients call it
	regs            []*api.ServiceRegistration
	nomad           map[string]bool // the Nomad namespaces it comes from
}

// Plan computes the desired WorkloadEntries and ServiceEntries.
func Plan(s State, o Options) Result {
	var r Result
	warn := func(f string, a ...any) { r.Warnings = append(r.Warnings, fmt.Sprintf(f, a...)) }
	meshed := meshedGroups(s, o, warn)
	services := map[[2]string]*service{}
	endpoints := map[string][]*api.ServiceRegistration{} // meshed allocation → its registrations
	refused := map[string]bool{}                         // meshed allocations with a registration left out
	for _, reg := range sortedRegs(s.Services) {
		a := s.Allocs[reg.AllocID]
		if a == nil || s.Jobs[[2]string{reg.Namespace, reg.JobID}] == nil {
			continue // listed before its allocation or job; the next event or resync brings them
		}
		m := meshed[identity.Key{Namespace: reg.Namespace, Job: reg.JobID, Group: a.TaskGroup}]
		ns := istio.DNSLabel(reg.Namespace, "default")
		if m != nil {
			ns = m.IstioNamespace
		} else if why := o.Policy.Refusal(reg.Namespace, ns); why != "" {
			warn("service %q of job %s/%s: %s", reg.ServiceName, reg.Namespace, reg.JobID, why)
			continue
		}
		if why := addressRefusal(a, reg, s.Jobs[[2]string{reg.Namespace, reg.JobID}]); why != "" {
			warn("%s", why)
			refused[a.ID] = m != nil // a meshed allocation's one entry holds all its services, or none
			continue
		}
		// Nomad allows capitals in a service name; Kubernetes names and DNS are lower case.
		name := strings.ToLower(reg.ServiceName)
		k := [2]string{ns, name}
		svc := services[k]
		if svc == nil {
			svc = &service{namespace: ns, name: name, meshed: m != nil, protocol: protocol(a, reg, warn),
				number: appPort(a, reg), nomad: map[string]bool{}}
			services[k] = svc
		}
		if svc.meshed != (m != nil) {
			warn("service %q in Istio namespace %s: allocation %s of job %s/%s is %s but the service's "+
				"first allocation is not; left out (a service is meshed or plain, not both)", reg.ServiceName, ns,
				reg.AllocID, reg.Namespace, reg.JobID, map[bool]string{true: "meshed", false: "plain"}[m != nil])
			continue
		}
		svc.nomad[reg.Namespace] = true
		svc.regs = append(svc.regs, reg)
		if m != nil && ready(a, m, s.Checks[a.ID]) {
			endpoints[a.ID] = append(endpoints[a.ID], reg)
		}
	}
	for _, id := range sortedKeys(endpoints) {
		if refused[id] {
			continue
		}
		a := s.Allocs[id]
		m := meshed[identity.Key{Namespace: a.Namespace, Job: a.JobID, Group: a.TaskGroup}]
		r.Objects = append(r.Objects, workloadEntry(a, m, endpoints[id], services))
	}
	for _, k := range sortedServices(services) {
		r.Objects = append(r.Objects, serviceEntry(services[k], o.Domain))
	}
	return r
}

func sortedServices(services map[[2]string]*service) [][2]string {
	keys := make([][2]string, 0, len(services))
	for k := range services {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i][0]+"/"+keys[i][1] < keys[j][0]+"/"+keys[j][1] })
	return keys
}

func sortedRegs(in []*api.ServiceRegistration) []*api.ServiceRegistration {
	out := append([]*api.ServiceRegistration(nil), in...)
	sort.Slice(out, func(i, j int) bool {
		if out[i].AllocID != out[j].AllocID {
			return out[i].AllocID < out[j].AllocID
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// Protocols a service may declare with the tag protocol=<p>, or by its port's label named as Istio names a
// port (<protocol> or <protocol>-<suffix>); anything else is tcp, a tag with a warning.
var Protocols = map[string]bool{"http": true, "http2": true, "grpc": true, "tcp": true, "tls": true}

// protocol is the service's: its protocol=<p> tag, else its port label's prefix, else tcp.
func protocol(a *api.AllocationListStub, reg *api.ServiceRegistration, warn func(string, ...any)) string {
	declared := false
	for _, t := range reg.Tags {
		p, ok := strings.CutPrefix(t, "protocol=")
		if !ok {
			continue
		}
		if Protocols[p] {
			return p
		}
		declared = true
		warn("service %q of job %s/%s: tag %q: want protocol=http, http2, grpc, tcp or tls; using tcp",
			reg.ServiceName, reg.Namespace, reg.JobID, t)
	}
	// A tag that says something else is still the job's declaration: not overridden by the label.
	if p, _, _ := strings.Cut(strings.ToLower(portLabel(a, reg)), "-"); !declared && Protocols[p] {
		return p
	}
	return "tcp"
}

// portLabel is the label of the allocation's port the service registered, "" when none matches.
func portLabel(a *api.AllocationListStub, reg *api.ServiceRegistration) string {
	if a.AllocatedResources != nil {
		for _, p := range a.AllocatedResources.Shared.Ports {
			if p.Value == reg.Port {
				return p.Label
			}
		}
	}
	return ""
}

// appPort is the port the app listens on: the mapped port's `to` where the group maps one, else the host port.
func appPort(a *api.AllocationListStub, reg *api.ServiceRegistration) int {
	if a.AllocatedResources != nil {
		for _, p := range a.AllocatedResources.Shared.Ports {
			if p.Value == reg.Port && p.To > 0 {
				return p.To
			}
		}
	}
	return reg.Port
}

// portName is the ServiceEntry's port name, which Istio reads the protocol from and a WorkloadEntry maps to
// its port: <protocol>-<service>, cut to a DNS label.
func portName(protocol, service string) string {
	n := protocol + "-" + istio.DNSLabel(service, "port")
	if len(n) > 63 {
		n = strings.TrimRight(n[:63], "-")
	}
	return n
}

// Name of an allocation's WorkloadEntry: <job>-<group>-<first 8 of the allocation ID>, a DNS label.
func Name(job, group, allocID string) string {
	id := istio.DNSLabel(allocID, "alloc")
	if len(id) > 8 {
		id = id[:8]
	}
	prefix := istio.DNSLabel(job+"-"+group, "alloc")
	if len(prefix) > 63-1-len(id) {
		prefix = strings.TrimRight(prefix[:63-1-len(id)], "-")
	}
	return prefix + "-" + id
}

func host(svc *service, domain string) string {
	return svc.name + "." + svc.namespace + ".svc." + domain
}
