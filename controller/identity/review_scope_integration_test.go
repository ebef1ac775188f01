package identity

import (
	"context"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestReviewControllerIdentityScope (review finding): what the controller's API-server identity can do beyond what
// the controller does, i.e. what a stolen controller client key gives: tokens of any audience and lifetime,
// unbound, for service accounts it did not create, and deleting an operator's service account.
func TestReviewControllerIdentityScope(t *testing.T) {
	e := startEnv(t)
	ctl := kubeClient(t, e.cp.ControllerKubeconfig)
	ctx := context.Background()
	if _, err := e.admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a",
		Labels: map[string]string{"istio-sidecar.io/mesh": "true"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.admin.CoreV1().ServiceAccounts("team-a").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "ops"}},
		metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	year := int64(365 * 24 * 3600)
	tr, err := ctl.CoreV1().ServiceAccounts("team-a").CreateToken(ctx, "ops", &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &year}}, metav1.CreateOptions{})
	if err == nil {
		_, aud, _, _ := claims(t, tr.Status.Token)
		t.Errorf("the controller's identity minted an unbound token for the operator's team-a/ops, audiences %v, expiring %s",
			aud, tr.Status.ExpirationTimestamp)
	}
	if err := ctl.CoreV1().ServiceAccounts("team-a").Delete(ctx, "ops", metav1.DeleteOptions{}); err == nil {
		t.Errorf("the controller's identity deleted the operator's service account team-a/ops")
	}
}
