package plan

import (
	"sort"
	"strings"

	"github.com/hashicorp/nomad/api"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// APIVersion of the objects the controller writes.
const APIVersion = "networking.istio.io/v1"

func object(kind, namespace, name string, labels map[string]string, spec map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": APIVersion, "kind": kind, "spec": spec}}
	u.SetNamespace(namespace)
	u.SetName(name)
	l := map[string]string{ManagedByLabel: ManagedBy}
	for k, v := range labels {
		l[k] = v
	}
	u.SetLabels(l)
	return u
}

// workloadEntry is one ready allocation of a meshed group: the address other nodes reach it at (the one Nomad
// registered: the node's for bridge and host mode alike) and, per service, the port Nomad mapped on it.
func workloadEntry(a *api.AllocationListStub, m *mesh, regs []*api.ServiceRegistration,
	services map[[2]string]*service) *unstructured.Unstructured {
	labels := map[string]any{}
	for k, v := range m.labels {
		labels[k] = v
	}
	ports := map[string]any{}
	for _, reg := range regs {
		svc := services[[2]string{m.IstioNamespace, strings.ToLower(reg.ServiceName)}]
		labels[ServiceLabelPrefix+svc.name] = "true"
		ports[portName(svc.protocol, svc.name)] = int64(reg.Port)
	}
	u := object("WorkloadEntry", m.IstioNamespace, Name(a.JobID, a.TaskGroup, a.ID), map[string]string{
		NomadNamespaceLabel: a.Namespace, NomadJobLabel: labelValue(a.JobID), NomadGroupLabel: labelValue(a.TaskGroup),
	}, map[string]any{
		"address":        regs[0].Address,
		"ports":          ports,
		"serviceAccount": m.ServiceAccount,
		"labels":         labels,
	})
	u.SetAnnotations(map[string]string{NomadAllocAnno: a.ID})
	return u
}

// serviceEntry is one Nomad service name: a meshed one selects its WorkloadEntries, a plain one lists its
// registrations as endpoints that meshed clients call in plaintext.
func serviceEntry(svc *service, domain string) *unstructured.Unstructured {
	name := portName(svc.protocol, svc.name)
	spec := map[string]any{
		"hosts":      []any{host(svc, domain)},
		"location":   "MESH_INTERNAL",
		"resolution": "STATIC",
		"ports":      []any{map[string]any{"number": int64(svc.number), "name": name, "protocol": protocolName(svc.protocol)}},
	}
	if svc.meshed {
		spec["workloadSelector"] = map[string]any{"labels": map[string]any{ServiceLabelPrefix + svc.name: "true"}}
	} else {
		var eps []any
		for _, reg := range svc.regs {
			eps = append(eps, map[string]any{"address": reg.Address, "ports": map[string]any{name: int64(reg.Port)},
				"labels": map[string]any{tlsModeLabel: "disabled"}})
		}
		spec["endpoints"] = eps
	}
	var nomadNS []string
	for ns := range svc.nomad {
		nomadNS = append(nomadNS, ns)
	}
	sort.Strings(nomadNS)
	labels := map[string]string{}
	if len(nomadNS) == 1 {
		labels[NomadNamespaceLabel] = nomadNS[0]
	}
	return object("ServiceEntry", svc.namespace, svc.name, labels, spec)
}

// protocolName is Istio's spelling of the protocol.
func protocolName(p string) string {
	switch p {
	case "http2":
		return "HTTP2"
	case "grpc":
		return "GRPC"
	case "http":
		return "HTTP"
	case "tls":
		return "TLS"
	}
	return "TCP"
}

// labelValue keeps a Nomad name usable as a label value (63 characters of [A-Za-z0-9._-]).
func labelValue(s string) string {
	if labelError("k", s) == nil {
		return s
	}
	return "" // the annotation and the object's name still say which allocation it is
}
