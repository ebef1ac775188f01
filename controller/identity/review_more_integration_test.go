package identity

import (
	"context"
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/istio-sidecar/istio-sidecar/controller/identity/variables"
)

// TestReviewForgedVariableDeletesAnOperatorSecret (review finding): the same forged claims may name any Secret
// in any mesh namespace; the controller deletes it although it never made it (Revoke checks no label, and the
// RBAC plus admission policy allow deleting every Secret of a mesh namespace).
func TestReviewForgedVariableDeletesAnOperatorSecret(t *testing.T) {
	e := startEnv(t)
	e.startController(t, testTTL/2)
	e.register(t, meshedJob("team-a", "web", "frontend", map[string]interface{}{}))
	e.variable(t, "team-a", "nomad/jobs/web/frontend", "web's token", func(items map[string]string) error {
		if items[variables.KeyToken] == "" {
			return fmt.Errorf("no token: %v", items)
		}
		return nil
	})
	ctx := context.Background()
	if _, err := e.admin.CoreV1().Secrets("team-a").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db-credentials"},
		StringData: map[string]string{"password": "s3cret"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dev := e.nomad.Client(t, "team-b-dev", `namespace "team-b" {
  policy = "write"
  variables {
    path "*" { capabilities = ["read", "list", "write", "destroy"] }
  }
}`)
	payload := fmt.Sprintf(`{"exp":%d,"kubernetes.io":{"namespace":"team-a","serviceaccount":{"name":"default"},"secret":{"name":"db-credentials","uid":"x"}}}`,
		time.Now().Add(time.Hour).Unix())
	forged := "e30." + base64.RawURLEncoding.EncodeToString([]byte(payload)) + ".sig"
	if _, _, err := dev.Variables().Create(&api.Variable{Namespace: "team-b", Path: "nomad/jobs/evil/g", Items: api.VariableItems{
		variables.KeyToken: forged, variables.KeyNamespace: "team-b", variables.KeyServiceAccount: "default"}},
		&api.WriteOptions{Namespace: "team-b"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := dev.Jobs().Register(meshedJob("team-b", "evil", "g", map[string]interface{}{}), &api.WriteOptions{Namespace: "team-b"}); err != nil {
		t.Fatal(err)
	}
	e.variable(t, "team-b", "nomad/jobs/evil/g", "evil's real token", func(items map[string]string) error {
		if items[variables.KeyToken] == "" || items[variables.KeyToken] == forged {
			return fmt.Errorf("not yet: %v", items)
		}
		return nil
	})
	if _, err := e.admin.CoreV1().Secrets("team-a").Get(ctx, "db-credentials", metav1.GetOptions{}); err != nil {
		t.Errorf("the operator's Secret team-a/db-credentials after team-b's forged Variable: %v", err)
	}
}

// TestReviewBadServiceAccountIsNotRefused (review finding): a service_account the API server rejects (not a DNS
// subdomain) is retried forever with backoff and only logged; the job's owner never gets a `refused` reason,
// contrary to "bad input: clear error naming the field and value".
func TestReviewBadServiceAccountIsNotRefused(t *testing.T) {
	e := startEnv(t)
	e.startController(t, testTTL/2)
	e.register(t, meshedJob("team-a", "web", "frontend", map[string]interface{}{"service_account": "Web_Frontend"}))
	e.variable(t, "team-a", "nomad/jobs/web/frontend", "a refusal naming service_account", func(items map[string]string) error {
		if items[variables.KeyRefused] == "" {
			return fmt.Errorf("no refusal: %v", items)
		}
		return nil
	})
}
