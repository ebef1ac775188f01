package identity

import (
	"context"
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/istio-sidecar/istio-sidecar/controller/identity/apiserver"
	"github.com/istio-sidecar/istio-sidecar/controller/identity/variables"
	"github.com/istio-sidecar/istio-sidecar/internal/nomadtest"
)

// TestController_ForgedVariableCannotRevokeAnotherGroup: a job author of Nomad namespace team-b who may write
// Variables in their own namespace (the usual way teams keep app secrets) writes a Variable with the controller's
// keys and marker at the path of a group they are about to register. Its istio_token is an unsigned JWT whose
// claims name team-a's group Secret (the name is a hash of public names). The controller must not act on those
// claims: team-a's Secret and live token stay.
func TestController_ForgedVariableCannotRevokeAnotherGroup(t *testing.T) {
	e := startEnv(t)
	e.startController(t, testTTL/2)

	e.register(t, meshedJob("team-a", "web", "frontend", map[string]interface{}{"service_account": "web"}))
	items := e.variable(t, "team-a", "nomad/jobs/web/frontend", "web's token", func(items map[string]string) error {
		if items[variables.KeyToken] == "" {
			return fmt.Errorf("no token: %v", items)
		}
		return nil
	})
	victim := checkToken(t, e, items, "team-a", "web")
	secret := apiserver.SecretName("team-a", "web", "frontend")

	// team-b's developer: may write Variables in team-b only.
	dev := e.nomad.Client(t, "team-b-dev", `namespace "team-b" {
  policy = "write"
  variables {
    path "*" { capabilities = ["read", "list", "write", "destroy"] }
  }
}`)
	payload := fmt.Sprintf(`{"exp":%d,"kubernetes.io":{"namespace":"team-a","serviceaccount":{"name":"web"},"secret":{"name":%q,"uid":"x"}}}`,
		time.Now().Add(time.Hour).Unix(), secret)
	forged := "e30." + base64.RawURLEncoding.EncodeToString([]byte(payload)) + ".sig"
	if _, _, err := dev.Variables().Create(&api.Variable{Namespace: "team-b", Path: "nomad/jobs/evil/g", Items: api.VariableItems{
		variables.KeyToken: forged, variables.KeyNamespace: "team-b", variables.KeyServiceAccount: "default",
		variables.KeyManagedBy: variables.ManagedBy}},
		&api.WriteOptions{Namespace: "team-b"}); err != nil {
		t.Fatalf("team-b's developer writing its own Variable: %v", err)
	}
	if _, _, err := dev.Jobs().Register(meshedJob("team-b", "evil", "g", map[string]interface{}{}), &api.WriteOptions{Namespace: "team-b"}); err != nil {
		t.Fatal(err)
	}
	// The controller has acted on evil once evil's Variable holds a real team-b token.
	e.variable(t, "team-b", "nomad/jobs/evil/g", "evil's real token", func(items map[string]string) error {
		if items[variables.KeyToken] == "" || items[variables.KeyToken] == forged {
			return fmt.Errorf("not yet: %v", items)
		}
		return nil
	})
	if _, err := e.admin.CoreV1().Secrets("team-a").Get(context.Background(), secret, metav1.GetOptions{}); err != nil {
		t.Errorf("team-a's bound Secret %s after team-b's forged Variable: %v (team-b revoked team-a's token)", secret, err)
	}
	nomadtest.Eventually(t, 30*time.Second, "team-a's token still authenticated", func() error {
		if st := e.review(t, victim); !st.Authenticated {
			return fmt.Errorf("team-a's live token no longer authenticates: %+v", st)
		}
		return nil
	})
}
