package identity

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/istio-sidecar/istio-sidecar/controller/identity/apiserver"
	"github.com/istio-sidecar/istio-sidecar/internal/nomadtest"
)

// TestControllerIdentityScope: the controller's API-server identity can do no more than the controller does, so a
// stolen controller client key gives no token of another audience, longer lifetime or unbound, and deletes no
// service account or Secret an operator made; what the controller does itself still passes.
func TestControllerIdentityScope(t *testing.T) {
	e := startEnv(t)
	ctl := kubeClient(t, e.cp.ControllerKubeconfig)
	ctx := context.Background()
	if _, err := e.admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a",
		Labels: map[string]string{apiserver.MeshLabel: "true"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.admin.CoreV1().ServiceAccounts("team-a").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "ops"}},
		metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.admin.CoreV1().Secrets("team-a").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db-credentials"}},
		metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	bound, err := ctl.CoreV1().Secrets("team-a").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "istio-sidecar-scope",
		Labels: map[string]string{apiserver.ManagedByLabel: apiserver.ManagedBy}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("the controller creating a Secret of its own: %v", err)
	}
	hour, year := int64(3600), int64(365*24*3600)
	ref := &authenticationv1.BoundObjectReference{Kind: "Secret", APIVersion: "v1", Name: bound.Name, UID: bound.UID}
	mint := func(spec authenticationv1.TokenRequestSpec) error {
		_, err := ctl.CoreV1().ServiceAccounts("team-a").CreateToken(ctx, "ops", &authenticationv1.TokenRequest{Spec: spec}, metav1.CreateOptions{})
		return err
	}
	denied := func(err error) error {
		if err == nil || !strings.Contains(err.Error(), "istio-sidecar controller") {
			return fmt.Errorf("not refused by the controller's admission policy: %v", err)
		}
		return nil
	}
	// The admission policy takes effect a moment after it is applied.
	nomadtest.Eventually(t, 30*time.Second, "an unbound year-long token refused", func() error {
		return denied(mint(authenticationv1.TokenRequestSpec{ExpirationSeconds: &year}))
	})
	for name, spec := range map[string]authenticationv1.TokenRequestSpec{
		"no audience":       {ExpirationSeconds: &hour, BoundObjectRef: ref},
		"another audience":  {Audiences: []string{"kubernetes"}, ExpirationSeconds: &hour, BoundObjectRef: ref},
		"a second audience": {Audiences: []string{apiserver.Audience, "kubernetes"}, ExpirationSeconds: &hour, BoundObjectRef: ref},
		"a year":            {Audiences: []string{apiserver.Audience}, ExpirationSeconds: &year, BoundObjectRef: ref},
		"unbound":           {Audiences: []string{apiserver.Audience}, ExpirationSeconds: &hour},
	} {
		if err := denied(mint(spec)); err != nil {
			t.Errorf("token with %s: %v", name, err)
		}
	}
	if err := mint(authenticationv1.TokenRequestSpec{Audiences: []string{apiserver.Audience}, ExpirationSeconds: &hour, BoundObjectRef: ref}); err != nil {
		t.Errorf("the token the controller requests: %v", err)
	}
	if err := denied(ctl.CoreV1().ServiceAccounts("team-a").Delete(ctx, "ops", metav1.DeleteOptions{})); err != nil {
		t.Errorf("deleting the operator's service account team-a/ops: %v", err)
	}
	if err := denied(ctl.CoreV1().Secrets("team-a").Delete(ctx, "db-credentials", metav1.DeleteOptions{})); err != nil {
		t.Errorf("deleting the operator's Secret team-a/db-credentials: %v", err)
	}
	_, err = ctl.CoreV1().Secrets("team-a").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "istio-sidecar-x"}},
		metav1.CreateOptions{})
	if err := denied(err); err != nil {
		t.Errorf("creating an unlabelled Secret: %v", err)
	}
	if err := ctl.CoreV1().Secrets("team-a").Delete(ctx, bound.Name, metav1.DeleteOptions{}); err != nil {
		t.Errorf("the controller deleting its own Secret: %v", err)
	}
}
