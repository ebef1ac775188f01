// Package apply makes the API server hold exactly the planned WorkloadEntries and ServiceEntries: each written
// with server-side apply under the controller's field manager, and every object carrying the controller's
// managed-by label that is no longer planned deleted. Objects without that label are never touched.
package apply

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"github.com/istio-sidecar/istio-sidecar/controller/identity/apiserver"
	"github.com/istio-sidecar/istio-sidecar/controller/registry/plan"
)

// FieldManager is the controller's name in the objects' managedFields.
const FieldManager = "istio-sidecar-controller"

// Resources the controller writes, by kind.
var Resources = map[string]schema.GroupVersionResource{
	"WorkloadEntry": {Group: "networking.istio.io", Version: "v1", Resource: "workloadentries"},
	"ServiceEntry":  {Group: "networking.istio.io", Version: "v1", Resource: "serviceentries"},
}

// Applier remembers what it last applied, so that an unchanged object costs no write.
type Applier struct {
	Dynamic    dynamic.Interface
	Namespaces *apiserver.Client
	applied    map[string][32]byte
	usable     map[string]bool // namespaces known to be the controller's
}

// Forget drops what the applier remembers, so that the next Apply writes every object again and checks every
// namespace: an edit made behind the controller's back is undone at the next resync.
func (a *Applier) Forget() { a.applied, a.usable = nil, nil }

func key(kind, ns, name string) string { return kind + " " + ns + "/" + name }

// Apply converges the API server on want. Every object is tried; the error joins those that failed, and a
// namespace the controller may not use (refusal) is reported there too.
func (a *Applier) Apply(ctx context.Context, want []*unstructured.Unstructured) error {
	if a.applied == nil {
		a.applied, a.usable = map[string][32]byte{}, map[string]bool{}
	}
	have, err := a.existing(ctx)
	if err != nil {
		return err
	}
	var errs []error
	usable := map[string]error{}
	wanted := map[string]bool{}
	for _, o := range want {
		k := key(o.GetKind(), o.GetNamespace(), o.GetName())
		wanted[k] = true
		ns := o.GetNamespace()
		if _, seen := usable[ns]; !seen {
			usable[ns] = a.namespace(ctx, ns)
		}
		if usable[ns] != nil {
			errs = append(errs, fmt.Errorf("%s: %w", k, usable[ns]))
			continue
		}
		if err := a.put(ctx, k, o, have[k]); err != nil {
			errs = append(errs, err)
		}
	}
	for k, o := range have {
		if !wanted[k] {
			if err := a.remove(ctx, k, o); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func (a *Applier) namespace(ctx context.Context, ns string) error {
	if a.usable[ns] {
		return nil
	}
	refusal, err := a.Namespaces.EnsureNamespace(ctx, ns)
	if err != nil {
		return err
	}
	if refusal != "" {
		return errors.New(refusal)
	}
	a.usable[ns] = true
	return nil
}

// existing lists the objects carrying the controller's label, in every namespace.
func (a *Applier) existing(ctx context.Context) (map[string]*unstructured.Unstructured, error) {
	out := map[string]*unstructured.Unstructured{}
	sel := metav1.ListOptions{LabelSelector: plan.ManagedByLabel + "=" + plan.ManagedBy}
	for kind, gvr := range Resources {
		list, err := a.Dynamic.Resource(gvr).List(ctx, sel)
		if err != nil {
			return nil, fmt.Errorf("listing %s: %w", gvr.Resource, err)
		}
		for i := range list.Items {
			o := &list.Items[i]
			out[key(kind, o.GetNamespace(), o.GetName())] = o
		}
	}
	return out, nil
}

// put applies o unless it exists and is what was last applied.
func (a *Applier) put(ctx context.Context, k string, o *unstructured.Unstructured, have *unstructured.Unstructured) error {
	body, err := json.Marshal(o.Object)
	if err != nil {
		return fmt.Errorf("%s: %w", k, err)
	}
	sum := sha256.Sum256(body)
	if have != nil && a.applied[k] == sum {
		return nil
	}
	if have == nil {
		if err := a.notSomeoneElses(ctx, k, o); err != nil {
			return err
		}
	}
	force := true
	_, err = a.Dynamic.Resource(Resources[o.GetKind()]).Namespace(o.GetNamespace()).Patch(ctx, o.GetName(),
		types.ApplyPatchType, body, metav1.PatchOptions{FieldManager: FieldManager, Force: &force})
	if err != nil {
		delete(a.applied, k)
		return fmt.Errorf("applying %s: %w", k, err)
	}
	a.applied[k] = sum
	return nil
}

// notSomeoneElses refuses to take over an object of the same name that the controller did not make: applying
// with force would make its fields the controller's, and a later plan would delete it.
func (a *Applier) notSomeoneElses(ctx context.Context, k string, o *unstructured.Unstructured) error {
	got, err := a.Dynamic.Resource(Resources[o.GetKind()]).Namespace(o.GetNamespace()).Get(ctx, o.GetName(), metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return fmt.Errorf("reading %s: %w", k, err)
	case got.GetLabels()[plan.ManagedByLabel] != plan.ManagedBy:
		return fmt.Errorf("%s exists without %s=%s: not the controller's, left alone", k, plan.ManagedByLabel, plan.ManagedBy)
	}
	return nil
}

// remove deletes an object that is no longer planned, only the very one listed (its UID).
func (a *Applier) remove(ctx context.Context, k string, o *unstructured.Unstructured) error {
	uid := o.GetUID()
	err := a.Dynamic.Resource(Resources[o.GetKind()]).Namespace(o.GetNamespace()).Delete(ctx, o.GetName(),
		metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
	delete(a.applied, k)
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("deleting %s: %w", k, err)
	}
	return nil
}
