package apiserver

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// TestEnsureNamespaceJudgesOneMadeMeanwhile: a namespace someone else created, unlabelled, between the
// controller's look and its create is refused as if it had been there all along.
func TestEnsureNamespaceJudgesOneMadeMeanwhile(t *testing.T) {
	kube := fake.NewSimpleClientset()
	kube.PrependReactor("create", "namespaces", func(a k8stesting.Action) (bool, runtime.Object, error) {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}}
		if err := kube.Tracker().Add(ns); err != nil {
			t.Fatal(err)
		}
		return true, nil, apierrors.NewAlreadyExists(corev1.Resource("namespaces"), "team-a")
	})
	c := Client{Kube: kube}
	refusal, err := c.EnsureNamespace(context.Background(), "team-a")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(refusal, `"team-a"`) || !strings.Contains(refusal, MeshLabel) {
		t.Errorf("refusal = %q, want one naming team-a and the label it lacks", refusal)
	}
}
