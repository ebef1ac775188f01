// Package policy decides which Nomad namespace may claim which Istio namespace. A job author chooses the Istio
// namespace in the sidecar's task config; the operator decides, through this policy, which choices the
// controller honours with a token.
package policy

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/istio-sidecar/istio-sidecar/driver/istio"
)

// Reserved is the Nomad namespace of the control plane: no job in it is meshed.
const Reserved = "istio-system"

// Any is the policy key that applies to every Nomad namespace.
const Any = "*"

// Policy maps a Nomad namespace (or Any) to the Istio namespaces its jobs may claim. The nil *Policy is the
// default: a Nomad namespace may claim only the Istio namespace of exactly its own name. Nomad's names are
// case-sensitive and longer than a DNS label: folding them would let Team-A claim team-a's, so a Nomad namespace
// that is not already a DNS label may claim none until the operator names one for it.
type Policy struct {
	allow map[string][]string
}

// Load reads a policy file: JSON {"<nomad namespace>": ["<istio namespace>", ...]}, "*" allowed as a key.
func Load(path string) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	p, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// Parse checks a policy document: every Istio namespace a DNS label and not reserved, no entry for the
// reserved Nomad namespace.
func Parse(data []byte) (*Policy, error) {
	var allow map[string][]string
	if err := json.Unmarshal(data, &allow); err != nil {
		return nil, fmt.Errorf("namespace policy: %w", err)
	}
	for nomad, istioNamespaces := range allow {
		if nomad == "" || nomad == Reserved {
			return nil, fmt.Errorf("namespace policy: key %q: the Nomad namespace %s is reserved for the control plane", nomad, Reserved)
		}
		for _, ns := range istioNamespaces {
			if !istio.IsDNSLabel(ns) {
				return nil, fmt.Errorf("namespace policy: %q: Istio namespace %q is not a DNS label", nomad, ns)
			}
			if reservedIstio(ns) {
				return nil, fmt.Errorf("namespace policy: %q: Istio namespace %q is reserved", nomad, ns)
			}
		}
	}
	return &Policy{allow: allow}, nil
}

// reservedIstio are the Istio namespaces no workload may claim: the control plane's and Kubernetes' own.
func reservedIstio(ns string) bool {
	return ns == "istio-system" || strings.HasPrefix(ns, "kube-")
}

// Refusal is empty when a job in Nomad namespace nomad may claim Istio namespace ns, else the reason, for the
// job's owner: what was asked and what would allow it.
func (p *Policy) Refusal(nomad, ns string) string {
	if nomad == Reserved {
		return fmt.Sprintf("Nomad namespace %s is reserved for the control plane: no job in it gets a mesh identity", Reserved)
	}
	if reservedIstio(ns) {
		return fmt.Sprintf("Istio namespace %q is reserved: no workload may claim it", ns)
	}
	allowed := p.Allowed(nomad)
	for _, a := range allowed {
		if a == ns {
			return ""
		}
	}
	how := fmt.Sprintf("an operator may add %q to the entry for %q in the controller's -namespace-policy", ns, nomad)
	switch {
	case p == nil && len(allowed) == 0:
		return fmt.Sprintf("Nomad namespace %q is not a DNS label, so the default policy lets it claim no Istio "+
			"namespace; an operator may add an explicit entry {%q: [%q]} to the controller's -namespace-policy", nomad, nomad, ns)
	case p == nil:
		how = fmt.Sprintf("the default policy allows only %q; an operator may allow more with the controller's "+
			"-namespace-policy", allowed[0])
	case len(allowed) == 0:
		allowed = []string{"none"}
	}
	return fmt.Sprintf("Nomad namespace %q may not claim Istio namespace %q (allowed: %s); %s",
		nomad, ns, strings.Join(allowed, ", "), how)
}

// Allowed lists the Istio namespaces Nomad namespace nomad may claim, sorted.
func (p *Policy) Allowed(nomad string) []string {
	if p == nil {
		if !istio.IsDNSLabel(nomad) {
			return nil
		}
		return []string{nomad}
	}
	set := map[string]bool{}
	for _, key := range []string{nomad, Any} {
		for _, ns := range p.allow[key] {
			set[ns] = true
		}
	}
	out := make([]string, 0, len(set))
	for ns := range set {
		out = append(out, ns)
	}
	sort.Strings(out)
	return out
}
