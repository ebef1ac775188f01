package identity

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/istio-sidecar/istio-sidecar/controller/identity/variables"
)

// TestController_ForgedVariableCannotDeleteAnOperatorSecret: the same forged claims may name any Secret in any
// mesh namespace; the controller must not delete one it never made.
func TestController_ForgedVariableCannotDeleteAnOperatorSecret(t *testing.T) {
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
		variables.KeyToken: forged, variables.KeyNamespace: "team-b", variables.KeyServiceAccount: "default",
		variables.KeyManagedBy: variables.ManagedBy}},
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

// TestController_InvalidServiceAccountIsRefused: a service_account the API server would reject (not a DNS
// subdomain) is refused with a reason naming the field and value, and nothing is made for it.
func TestController_InvalidServiceAccountIsRefused(t *testing.T) {
	e := startEnv(t)
	e.startController(t, testTTL/2)
	e.register(t, meshedJob("team-a", "web", "frontend", map[string]interface{}{"service_account": "Web_Frontend"}))
	e.variable(t, "team-a", "nomad/jobs/web/frontend", "a refusal naming service_account", func(items map[string]string) error {
		if r := items[variables.KeyRefused]; !strings.Contains(r, `service_account "Web_Frontend"`) {
			return fmt.Errorf("no refusal naming the field and value: %v", items)
		}
		return nil
	})
	if _, err := e.admin.CoreV1().Namespaces().Get(context.Background(), "team-a", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("namespace team-a for a refused group: %v, want none made", err)
	}
}

// TestController_UnwritableGroupGetsNothing: a job ID Nomad allows but its Variable paths do not (web.v2) can
// never receive a Variable; the controller makes nothing for it rather than a service account and Secret no
// Variable will ever name.
func TestController_UnwritableGroupGetsNothing(t *testing.T) {
	e := startEnv(t)
	e.startController(t, testTTL/2)
	e.register(t, meshedJob("team-a", "web.v2", "frontend", map[string]interface{}{"service_account": "dotted"}))
	// The controller acts on one update at a time: once a job registered after another job's Variable was
	// written has its own, every sync that could have seen web.v2 is over.
	hasToken := func(items map[string]string) error {
		if items[variables.KeyToken] == "" {
			return fmt.Errorf("no token: %v", items)
		}
		return nil
	}
	for _, id := range []string{"web", "later"} {
		e.register(t, meshedJob("team-a", id, "frontend", map[string]interface{}{}))
		e.variable(t, "team-a", "nomad/jobs/"+id+"/frontend", id+"'s token", hasToken)
	}
	if err := e.serviceAccount("team-a", "dotted"); !apierrors.IsNotFound(err) {
		t.Errorf("service account team-a/dotted for job web.v2, which can have no Variable: %v, want none made", err)
	}
}
