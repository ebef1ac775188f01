package bootstrap

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// probeNamespace is what the controller may not create: it has no mesh label. Only ever a dry run.
const probeNamespace = "istio-sidecar-bootstrap-probe"

// scopePolicy is the ValidatingAdmissionPolicy of rbac/controller.yaml.
const scopePolicy = "istio-sidecar-controller-scope"

// policyEnforced returns nil once the API server denies the controller an unlabelled namespace: a policy takes
// about a second after its creation to be enforced, and until then the controller's identity could create one.
func policyEnforced(ctx context.Context, controller *kube) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: probeNamespace}}
	_, err := controller.typed.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err == nil {
		return fmt.Errorf("the controller may still create namespace %s: policy %s not enforced yet", probeNamespace, scopePolicy)
	}
	if strings.Contains(err.Error(), scopePolicy) {
		return nil
	}
	return fmt.Errorf("dry-run of namespace %s as the controller: %w", probeNamespace, err)
}
