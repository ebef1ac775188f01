package proxy

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// Workload is the identity a sidecar presents to the mesh, in the vocabulary of istioctl's cluster.env.
type Workload struct {
	PodName           string // POD_NAME: unique per allocation
	Namespace         string // POD_NAMESPACE
	ServiceAccount    string // SERVICE_ACCOUNT
	WorkloadName      string // ISTIO_META_WORKLOAD_NAME
	CanonicalService  string // CANONICAL_SERVICE and the service.istio.io/canonical-name label
	CanonicalRevision string // CANONICAL_REVISION and the service.istio.io/canonical-revision label
	Labels            map[string]string
	InstanceIP        string // INSTANCE_IP; empty lets pilot-agent pick from the interfaces it sees
	InterceptionMode  string // ISTIO_META_INTERCEPTION_MODE
	AppProbers        string // ISTIO_KUBE_APP_PROBERS (AppProbersEnv)
}

// Mesh holds the settings a fleet shares.
type Mesh struct {
	TrustDomain string // TRUST_DOMAIN
	CAAddress   string // CA_ADDR; empty means the discovery address, pilot-agent's own default
	// IstiodSAN is ISTIOD_SAN: the name istiod's certificate is checked for on the xDS connection, and on the
	// CA's only while CA_ADDR is unset (pilot-agent's options/security.go). Empty: the address's host.
	IstiodSAN string
	ClusterID string // ISTIO_META_CLUSTER_ID
	MeshID    string // ISTIO_META_MESH_ID
	Network   string // ISTIO_META_NETWORK
	// SecretTTL is SECRET_TTL, the workload certificate lifetime requested (a Go duration); empty: pilot-agent's.
	SecretTTL string
}

// NomadMeta is where the workload runs, exported as ISTIO_META_NOMAD_* so that it appears in the proxy's node
// metadata (config_dump, istiod's view of the proxy) without touching the workload's labels, which Istio
// selects policy on.
type NomadMeta struct {
	AllocID, JobID, Group, Task, Namespace, Datacenter, NodeID, NodeName string
}

func probeLocalhost(probers string) string {
	if probers == "" {
		return ""
	}
	return "true"
}

// Environment returns the variables pilot-agent reads, keyed by name. Empty values are left out so that
// pilot-agent's own defaults apply.
func Environment(w Workload, m Mesh, n NomadMeta, proxyConfig string) (map[string]string, error) {
	labels := map[string]string{}
	for k, v := range w.Labels {
		labels[k] = v
	}
	labels["service.istio.io/canonical-name"] = w.CanonicalService
	labels["service.istio.io/canonical-revision"] = w.CanonicalRevision
	labelsJSON, err := json.Marshal(labels)
	if err != nil {
		return nil, fmt.Errorf("encoding labels: %w", err)
	}
	env := map[string]string{
		"POD_NAME":                     w.PodName,
		"POD_NAMESPACE":                w.Namespace,
		"SERVICE_ACCOUNT":              w.ServiceAccount,
		"CANONICAL_SERVICE":            w.CanonicalService,
		"CANONICAL_REVISION":           w.CanonicalRevision,
		"INSTANCE_IP":                  w.InstanceIP,
		"ISTIO_META_WORKLOAD_NAME":     w.WorkloadName,
		"ISTIO_METAJSON_LABELS":        string(labelsJSON),
		"ISTIO_META_INTERCEPTION_MODE": w.InterceptionMode,
		"TRUST_DOMAIN":                 m.TrustDomain,
		"CA_ADDR":                      m.CAAddress,
		"ISTIOD_SAN":                   m.IstiodSAN,
		"ISTIO_META_CLUSTER_ID":        m.ClusterID,
		"ISTIO_META_MESH_ID":           m.MeshID,
		"ISTIO_META_NETWORK":           m.Network,
		"SECRET_TTL":                   m.SecretTTL,
		"ISTIO_META_NOMAD_ALLOC_ID":    n.AllocID,
		"ISTIO_META_NOMAD_JOB_ID":      n.JobID,
		"ISTIO_META_NOMAD_GROUP":       n.Group,
		"ISTIO_META_NOMAD_TASK":        n.Task,
		"ISTIO_META_NOMAD_NAMESPACE":   n.Namespace,
		"ISTIO_META_NOMAD_DATACENTER":  n.Datacenter,
		"ISTIO_META_NOMAD_NODE_ID":     n.NodeID,
		"ISTIO_META_NOMAD_NODE_NAME":   n.NodeName,
		// The token the template wrote is a third-party (audience-bound) JWT, as istioctl issues for VMs.
		"JWT_POLICY":   "third-party-jwt",
		"PROXY_CONFIG": proxyConfig,
		// The app's probes, which pilot-agent serves on its status port, sent to the app on localhost: in host
		// mode INSTANCE_IP is the node's address, on which the app need not listen.
		"ISTIO_KUBE_APP_PROBERS":                     w.AppProbers,
		"REWRITE_PROBE_LEGACY_LOCALHOST_DESTINATION": probeLocalhost(w.AppProbers),
	}
	for k, v := range env {
		if v == "" {
			delete(env, k)
		}
	}
	return env, nil
}

// EnvList builds pilot-agent's environment, which Envoy inherits: Nomad's NOMAD_* variables, the task's
// variables whose names start with one of the operator's passthrough prefixes, and the proxy's own. Nothing
// else from the jobspec reaches it, and never a variable the driver owns (ownedenv.go), set or not:
// LD_PRELOAD, ISTIO_BOOTSTRAP_OVERRIDE, an empty CA_ADDR or a network the operator left empty, set by a job,
// would change what the proxy runs, trusts or claims to be. Sorted, so that a restart sees the same
// environment.
func EnvList(task map[string]string, passthrough []string, proxy map[string]string) []string {
	all := map[string]string{"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	for k, v := range task {
		if (strings.HasPrefix(k, "NOMAD_") || hasAnyPrefix(k, passthrough)) && !OwnedVariable(k) {
			all[k] = v
		}
	}
	for k, v := range proxy {
		all[k] = v
	}
	keys := make([]string, 0, len(all))
	for k := range all {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, k+"="+all[k])
	}
	return out
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if p != "" && strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
