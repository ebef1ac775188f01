package bootstrap

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/nomad/api"

	"github.com/istio-sidecar/istio-sidecar/controller/nomaderr"
)

// ControllerPolicyName names the controller's Nomad ACL policy and its token.
const ControllerPolicyName = "istio-sidecar-controller"

// ControllerPolicy is the least the controller needs, checked against Nomad v1.6.3's acl package:
//
//   - read-job (with list-jobs) in every namespace: the Job, Allocation, Evaluation and Service topics of the
//     event stream, jobs and allocations, and for registration the service registrations (ServiceRegistration.List
//     and GetService) and the allocations' check results (ClientAllocations.Checks); nothing that submits, stops
//     or execs.
//   - read, list, write and destroy on Variables under nomad/jobs/*/* in every namespace: each group's
//     nomad/jobs/<job>/<group>, written and removed by the controller. Not nomad/jobs/<job>, where teams keep
//     their jobs' own secrets; a task-level nomad/jobs/<job>/<group>/<task> it can reach, and never writes.
//   - nothing in istio-system: an exact namespace rule wins over the "*" glob for namespace capabilities, and a
//     Variable's rule is the closest match of "<namespace>\x00<path>" against every rule's pattern, so
//     "istio-system" + "nomad/jobs/*" (and "*") beats "*" + "nomad/jobs/*" there: the control plane's keys cannot
//     be read or overwritten with this token.
const ControllerPolicy = `namespace "*" {
  capabilities = ["list-jobs", "read-job"]
  variables {
    path "nomad/jobs/*/*" {
      capabilities = ["read", "list", "write", "destroy"]
    }
  }
}

namespace "istio-system" {
  policy = "deny"
  variables {
    path "nomad/jobs/*" {
      capabilities = ["deny"]
    }
    path "*" {
      capabilities = ["deny"]
    }
  }
}
`

// errACLDisabled means the agent runs without ACLs: there is no policy or token to make.
var errACLDisabled = errors.New("ACLs disabled")

func aclDisabled(err error) bool {
	return err != nil && strings.Contains(err.Error(), "ACL support disabled")
}

// ensurePolicy writes the controller's policy when it is missing or says something else.
func (b *run) ensurePolicy() error {
	have, _, err := b.nomad.ACLPolicies().Info(ControllerPolicyName, nil)
	if aclDisabled(err) {
		return errACLDisabled
	}
	if err != nil && nomaderr.Status(err) != 404 && !strings.Contains(err.Error(), "not found") {
		return fmt.Errorf("reading ACL policy %s: %w", ControllerPolicyName, err)
	}
	if have != nil && have.Rules == ControllerPolicy {
		b.logf("nomad: ACL policy %s unchanged", ControllerPolicyName)
		return nil
	}
	p := &api.ACLPolicy{Name: ControllerPolicyName, Description: "istio-sidecar controller: watch jobs, write nomad/jobs/* Variables outside istio-system", Rules: ControllerPolicy}
	if _, err := b.nomad.ACLPolicies().Upsert(p, nil); err != nil {
		return fmt.Errorf("writing ACL policy %s: %w", ControllerPolicyName, err)
	}
	b.logf("nomad: ACL policy %s written", ControllerPolicyName)
	return nil
}

// ensureToken returns the SecretID of a client token with exactly the controller's policy: the one in the
// controller's Variable if it still is one, else one named after the policy left by a run killed before it
// wrote the Variable, else a new one.
func (b *run) ensureToken(current string) (string, error) {
	if current != "" {
		self, _, err := b.nomad.ACLTokens().Self(&api.QueryOptions{AuthToken: current})
		if err == nil && controllerToken(self) {
			b.logf("nomad: ACL token %s kept", self.AccessorID)
			return current, nil
		}
	}
	stubs, _, err := b.nomad.ACLTokens().List(nil)
	if err != nil {
		return "", fmt.Errorf("listing ACL tokens: %w", err)
	}
	for _, s := range stubs {
		if s.Name != ControllerPolicyName {
			continue
		}
		tok, _, err := b.nomad.ACLTokens().Info(s.AccessorID, nil)
		if err != nil {
			return "", fmt.Errorf("reading ACL token %s: %w", s.AccessorID, err)
		}
		if controllerToken(tok) {
			b.logf("nomad: ACL token %s found", tok.AccessorID)
			return tok.SecretID, nil
		}
	}
	tok, _, err := b.nomad.ACLTokens().Create(&api.ACLToken{Name: ControllerPolicyName, Type: "client", Policies: []string{ControllerPolicyName}}, nil)
	if err != nil {
		return "", fmt.Errorf("creating the controller's ACL token: %w", err)
	}
	b.logf("nomad: ACL token %s created", tok.AccessorID)
	return tok.SecretID, nil
}

// controllerToken: a client token with the controller's policy and nothing else, not expiring.
func controllerToken(t *api.ACLToken) bool {
	return t != nil && t.Type == "client" && slices.Equal(t.Policies, []string{ControllerPolicyName}) &&
		len(t.Roles) == 0 && t.ExpirationTime == nil
}
