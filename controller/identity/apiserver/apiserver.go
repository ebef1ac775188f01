// Package apiserver is the controller's side of Istio's API server: the mesh namespaces, the service accounts
// in them, and the tokens istiod's CA accepts.
//
// Each group's token is bound to a Secret the controller creates for that group alone. The API server checks at
// every TokenReview that a bound Secret still exists with the UID in the token's claims, so deleting the Secret
// revokes that group's token at once, while the service account, which several groups may share, stays.
package apiserver

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Labels on what the controller makes. MeshLabel marks the namespaces it may act in (the
// ValidatingAdmissionPolicy in example/control-plane/rbac/controller.yaml enforces it); ManagedBy marks the
// service accounts and Secrets it created and so may delete.
const (
	MeshLabel      = "istio-sidecar.io/mesh"
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedBy      = "istio-sidecar-controller"
)

// Client talks to the API server as the controller.
type Client struct {
	Kube kubernetes.Interface
}

// EnsureNamespace creates Istio namespace ns, labelled for the mesh, if it is missing. An existing namespace
// without the label is not the controller's to use: refusal says so, and what the operator can do.
func (c *Client) EnsureNamespace(ctx context.Context, ns string) (refusal string, err error) {
	got, err := c.Kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err == nil {
		return unlabelled(got), nil
	}
	if !apierrors.IsNotFound(err) {
		return "", fmt.Errorf("namespace %s: %w", ns, err)
	}
	obj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{MeshLabel: "true"}}}
	_, err = c.Kube.CoreV1().Namespaces().Create(ctx, obj, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		// Someone else made it meanwhile, perhaps without the label: judge it as if it had been there.
		got, err = c.Kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if err != nil {
			return "", fmt.Errorf("namespace %s: %w", ns, err)
		}
		return unlabelled(got), nil
	}
	if err != nil {
		return "", fmt.Errorf("creating namespace %s: %w", ns, err)
	}
	return "", nil
}

// unlabelled is the refusal for an existing namespace without the mesh label, empty when it has it.
func unlabelled(got *corev1.Namespace) string {
	if got.Labels[MeshLabel] == "true" {
		return ""
	}
	return fmt.Sprintf("Istio namespace %q exists without the label %s=true, so the controller may not "+
		"act in it; an operator may label it (kubectl label namespace %s %s=true)", got.Name, MeshLabel, got.Name, MeshLabel)
}

// EnsureServiceAccount creates service account sa in ns, marked as the controller's, if it is missing.
func (c *Client) EnsureServiceAccount(ctx context.Context, ns, sa string) error {
	sas := c.Kube.CoreV1().ServiceAccounts(ns)
	if _, err := sas.Get(ctx, sa, metav1.GetOptions{}); err == nil {
		return nil
	} else if !apierrors.IsNotFound(err) {
		return fmt.Errorf("service account %s/%s: %w", ns, sa, err)
	}
	obj := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa, Namespace: ns,
		Labels: map[string]string{ManagedByLabel: ManagedBy}}}
	if _, err := sas.Create(ctx, obj, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating service account %s/%s: %w", ns, sa, err)
	}
	return nil
}

// ReleaseServiceAccount deletes service account sa in ns if the controller created it; one an operator made
// stays. The caller knows that no group uses it any more.
func (c *Client) ReleaseServiceAccount(ctx context.Context, ns, sa string) error {
	sas := c.Kube.CoreV1().ServiceAccounts(ns)
	got, err := sas.Get(ctx, sa, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("service account %s/%s: %w", ns, sa, err)
	}
	if got.Labels[ManagedByLabel] != ManagedBy {
		return nil
	}
	pre := metav1.Preconditions{UID: &got.UID}
	if err := sas.Delete(ctx, sa, metav1.DeleteOptions{Preconditions: &pre}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting service account %s/%s: %w", ns, sa, err)
	}
	return nil
}
