package bootstrap

import (
	"context"
	"fmt"
	"io/fs"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/nomad/api"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"github.com/istio-sidecar/istio-sidecar/controller/pki"
	"github.com/istio-sidecar/istio-sidecar/example/control-plane/rbac"

	"github.com/istio-sidecar/istio-sidecar/controller/nomaderr"
)

// APIServerService is the API server's Nomad service (example/control-plane/kube-apiserver.nomad.hcl).
const APIServerService = "kube-apiserver"

// MeshLabel marks the API-server namespaces the controller may act in (rbac/controller.yaml's policy).
const MeshLabel = "istio-sidecar.io/mesh"

// kube is the API server as one identity sees it.
type kube struct {
	typed  kubernetes.Interface
	dyn    dynamic.Interface
	mapper *restmapper.DeferredDiscoveryRESTMapper
}

// apiServerAddress is the first registered address of the API server's service, "" while there is none.
func (b *run) apiServerAddress() (string, error) {
	regs, _, err := b.nomad.Services().Get(APIServerService, &api.QueryOptions{Namespace: Namespace})
	if err != nil && nomaderr.Status(err) != 404 {
		return "", fmt.Errorf("looking up Nomad service %s@%s: %w", APIServerService, Namespace, err)
	}
	if len(regs) == 0 {
		return "", nil
	}
	return net.JoinHostPort(regs[0].Address, strconv.Itoa(regs[0].Port)), nil
}

// restConfig dials addr and verifies the API server's fixed name: Nomad services have no DNS names.
func restConfig(p *pki.PKI, addr, certFile, keyFile string) *rest.Config {
	return &rest.Config{
		Host: "https://" + addr, Timeout: 30 * time.Second,
		TLSClientConfig: rest.TLSClientConfig{ServerName: pki.APIServerName, CAData: p.File(pki.APIServerCACert),
			CertData: p.File(certFile), KeyData: p.File(keyFile)},
	}
}

func newKube(cfg *rest.Config) (*kube, error) {
	typed, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(typed.Discovery()))
	return &kube{typed: typed, dyn: dyn, mapper: mapper}, nil
}

// namespaces are istio-system and the mesh label on default, so that Nomad's default namespace can be meshed.
func namespaces() []*unstructured.Unstructured {
	ns := func(name string, labels map[string]any) *unstructured.Unstructured {
		md := map[string]any{"name": name}
		if labels != nil {
			md["labels"] = labels
		}
		return &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": md}}
	}
	return []*unstructured.Unstructured{ns(Namespace, nil), ns("default", map[string]any{MeshLabel: "true"})}
}

// rbacObjects are the embedded example/control-plane/rbac/*.yaml.
func rbacObjects() ([]*unstructured.Unstructured, error) {
	var all []*unstructured.Unstructured
	names, err := fs.Glob(rbac.Files, "*.yaml")
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		data, err := fs.ReadFile(rbac.Files, n)
		if err != nil {
			return nil, err
		}
		objs, err := decodeObjects("rbac/"+n, data)
		if err != nil {
			return nil, err
		}
		all = append(all, objs...)
	}
	return all, nil
}

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// established reports whether every CRD serves its kinds.
func (k *kube) established(ctx context.Context, crds []*unstructured.Unstructured) error {
	for _, c := range crds {
		got, err := k.dyn.Resource(crdResource).Get(ctx, c.GetName(), metav1.GetOptions{})
		if err != nil {
			return err
		}
		conds, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions")
		ok := false
		for _, raw := range conds {
			cond, _ := raw.(map[string]any)
			ok = ok || (cond["type"] == "Established" && cond["status"] == "True")
		}
		if !ok {
			return fmt.Errorf("CRD %s not established yet", c.GetName())
		}
	}
	return nil
}
