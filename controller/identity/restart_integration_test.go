package identity

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/istio-sidecar/istio-sidecar/controller/identity/variables"
	"github.com/istio-sidecar/istio-sidecar/internal/nomadtest"
)

// TestControllerRestart stops the controller, purges a job meanwhile, and starts it again: the purged group's
// Variable and token go, the running group keeps its Variable untouched, and an Istio namespace that exists
// without the mesh label is refused with the way out.
func TestControllerRestart(t *testing.T) {
	e := startEnv(t)
	ctx := context.Background()
	if _, err := e.admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "legacy"}},
		metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	stop := e.startController(t, 5*time.Minute)
	e.register(t, meshedJob("team-a", "web", "frontend", nil))
	e.register(t, meshedJob("team-a", "old", "g", nil))
	e.register(t, meshedJob("legacy", "app", "g", nil))
	hasToken := func(items map[string]string) error {
		if items[variables.KeyToken] == "" {
			return fmt.Errorf("no token: %v", items)
		}
		return nil
	}
	e.variable(t, "team-a", "nomad/jobs/web/frontend", "web's token", hasToken)
	oldToken := e.variable(t, "team-a", "nomad/jobs/old/g", "old's token", hasToken)[variables.KeyToken]
	legacy := e.variable(t, "legacy", "nomad/jobs/app/g", "legacy's refusal", present)
	if r := legacy[variables.KeyRefused]; !strings.Contains(r, "istio-sidecar.io/mesh=true") || legacy[variables.KeyToken] != "" {
		t.Errorf("unlabelled namespace: %v, want a refusal naming the label and no token", legacy)
	}
	before := e.modifyIndex(t, "team-a", "nomad/jobs/web/frontend")
	asController := kubeClient(t, e.cp.ControllerKubeconfig)
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "probe"}}
	if _, err := asController.CoreV1().Secrets("legacy").Create(ctx, secret, metav1.CreateOptions{}); err == nil {
		t.Errorf("the controller created a Secret in the unlabelled namespace legacy")
	}
	if _, err := asController.CoreV1().Secrets("team-a").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("the controller listed Secrets: %v, want forbidden (it creates and deletes them, never reads)", err)
	}

	stop()
	if _, _, err := e.nomad.Management.Jobs().Deregister("old", true, &api.WriteOptions{Namespace: "team-a"}); err != nil {
		t.Fatal(err)
	}
	e.startController(t, 5*time.Minute)
	e.variable(t, "team-a", "nomad/jobs/old/g", "the purged job's variable removed", func(items map[string]string) error {
		if items != nil {
			return fmt.Errorf("still there")
		}
		return nil
	})
	nomadtest.Eventually(t, time.Minute, "the purged job's token revoked", func() error {
		if st := e.review(t, oldToken); st.Authenticated {
			return fmt.Errorf("still authenticated")
		}
		return nil
	})
	if err := e.serviceAccount("team-a", "default"); err != nil {
		t.Errorf("service account team-a/default, still used by web: %v", err)
	}
	// An event handled after the restart's first full pass: by then web has been looked at.
	e.register(t, meshedJob("team-a", "marker", "g", nil))
	e.variable(t, "team-a", "nomad/jobs/marker/g", "marker's token", hasToken)
	if after := e.modifyIndex(t, "team-a", "nomad/jobs/web/frontend"); after != before {
		t.Errorf("web's variable was rewritten after the restart (modify index %d → %d): its token was still fresh", before, after)
	}
}

func (e *env) modifyIndex(t *testing.T, ns, path string) uint64 {
	t.Helper()
	v, _, err := e.nomad.Management.Variables().Peek(path, &api.QueryOptions{Namespace: ns})
	if err != nil || v == nil {
		t.Fatalf("variable %s: %v", path, err)
	}
	return v.ModifyIndex
}
