package apply

import (
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/istio-sidecar/istio-sidecar/controller/identity/apiserver"
	"github.com/istio-sidecar/istio-sidecar/controller/registry/plan"
	"github.com/istio-sidecar/istio-sidecar/internal/controlplane"
)

func serviceEntry(name string, port int64) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{"apiVersion": plan.APIVersion, "kind": "ServiceEntry",
		"metadata": map[string]any{"name": name, "namespace": "team-a",
			"labels": map[string]any{plan.ManagedByLabel: plan.ManagedBy}},
		"spec": map[string]any{"hosts": []any{name + ".team-a.svc.cluster.local"}, "location": "MESH_INTERNAL",
			"resolution": "STATIC", "ports": []any{map[string]any{"name": "tcp-" + name, "number": port, "protocol": "TCP"}}}}}
}

// TestApplierOwnsOnlyItsObjects: as the controller's API-server identity, the applier creates the mesh
// namespace and its objects, deletes what is no longer planned, leaves an object it did not make alone (not
// deleted, not taken over), and after Forget undoes an edit made behind its back.
func TestApplierOwnsOnlyItsObjects(t *testing.T) {
	cp := controlplane.Start(t, controlplane.BinariesFromEnv(t), controlplane.Options{DeferIstiod: true})
	rc, err := clientcmd.BuildConfigFromFlags("", cp.ControllerKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	dyn := dynamic.NewForConfigOrDie(rc)
	a := &Applier{Dynamic: dyn, Namespaces: &apiserver.Client{Kube: kubernetes.NewForConfigOrDie(rc)}}
	ctx := context.Background()
	if err := a.Apply(ctx, []*unstructured.Unstructured{serviceEntry("a", 80), serviceEntry("b", 81)}); err != nil {
		t.Fatal(err)
	}
	// Someone else's ServiceEntry, in the same namespace, with a name the plan then wants.
	cp.Kubectl(t, `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: theirs, namespace: team-a}
spec: {hosts: [theirs.example], location: MESH_EXTERNAL, resolution: DNS, ports: [{name: http, number: 80, protocol: HTTP}]}
`, "apply", "-f", "-")
	err = a.Apply(ctx, []*unstructured.Unstructured{serviceEntry("a", 80), serviceEntry("theirs", 90)})
	if err == nil || !strings.Contains(err.Error(), "not the controller's") {
		t.Errorf("applying over someone else's object: %v, want a refusal", err)
	}
	se := dyn.Resource(Resources["ServiceEntry"]).Namespace("team-a")
	if _, err := se.Get(ctx, "b", metav1.GetOptions{}); err == nil {
		t.Errorf("b is no longer planned but still there")
	}
	theirs, err := se.Get(ctx, "theirs", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("someone else's object: %v", err)
	}
	if loc, _, _ := unstructured.NestedString(theirs.Object, "spec", "location"); loc != "MESH_EXTERNAL" {
		t.Errorf("someone else's object was changed: %v", theirs.Object["spec"])
	}
	cp.Kubectl(t, "", "patch", "serviceentry", "-n", "team-a", "a", "--type=merge", "-p", `{"spec":{"location":"MESH_EXTERNAL"}}`)
	a.Forget()
	if err := a.Apply(ctx, []*unstructured.Unstructured{serviceEntry("a", 80)}); err != nil {
		t.Fatal(err)
	}
	got, err := se.Get(ctx, "a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if loc, _, _ := unstructured.NestedString(got.Object, "spec", "location"); loc != "MESH_INTERNAL" {
		t.Errorf("an edit behind the controller's back survived a resync: location %s", loc)
	}
	if ns, _, _ := unstructured.NestedString(got.Object, "metadata", "namespace"); ns != "team-a" {
		t.Errorf("namespace %s", ns)
	}
}
