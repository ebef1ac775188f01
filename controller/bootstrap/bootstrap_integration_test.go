package bootstrap_test

import (
	"bytes"
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/istio-sidecar/istio-sidecar/controller/bootstrap"
	"github.com/istio-sidecar/istio-sidecar/controller/pki"
	"github.com/istio-sidecar/istio-sidecar/internal/controlplane"
)

var systemQ = &api.QueryOptions{Namespace: bootstrap.Namespace}

var allVariables = []string{bootstrap.EtcdVariable, bootstrap.APIServerVariable, bootstrap.IstiodVariable, bootstrap.ControllerVariable}

// TestBootstrap runs the bootstrap against a real Nomad v1.6.3 agent with ACLs on and a real etcd and
// kube-apiserver: first before the API server is registered (the Nomad half only), then after, then again.
func TestBootstrap(t *testing.T) {
	bins := controlplane.BinariesFromEnv(t)
	nomad := devAgent(t, true)
	dir := filepath.Join(t.TempDir(), "operator")
	var log bytes.Buffer
	cfg := bootstrap.Config{Dir: dir, CRDs: bins.CRDs, TrustDomain: "cluster.local", Nomad: nomad, Out: &log}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("bootstrap output:\n%s", log.String())
		}
	})
	ctx := context.Background()

	out, err := bootstrap.Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.Pending, "nomad job run kube-apiserver.nomad.hcl") || !strings.Contains(out.Pending, "bootstrap again") {
		t.Errorf("pending = %q, want what to run next", out.Pending)
	}
	if _, err := os.Stat(filepath.Join(dir, bootstrap.AdminKubeconfig)); err == nil {
		t.Errorf("admin.kubeconfig written before the API server was there")
	}
	p, err := pki.Ensure(dir, pki.Options{TrustDomain: "cluster.local"})
	if err != nil {
		t.Fatal(err)
	}
	checkVariables(t, nomad, p)
	checkFileModes(t, dir)
	token := controllerSecret(t, nomad)
	checkControllerToken(t, nomad, token)

	// A run killed after it minted the token but before it wrote the Variables: the next finds the same token.
	for _, path := range []string{bootstrap.IstiodVariable, bootstrap.ControllerVariable} {
		if _, err := nomad.Variables().Delete(path, &api.WriteOptions{Namespace: bootstrap.Namespace}); err != nil {
			t.Fatal(err)
		}
	}

	cp := controlplane.Start(t, bins, controlplane.Options{PKIDir: dir, Bare: true})
	u, err := url.Parse(cp.APIServer)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(u.Port())
	registerAPIServer(t, nomad, port)
	cfg.Wait = 2 * time.Minute
	if out, err := bootstrap.Run(ctx, cfg); err != nil || out.Pending != "" {
		t.Fatalf("second run: %+v, %v", out, err)
	}
	if got := controllerSecret(t, nomad); got != token {
		t.Errorf("a new controller token after a run killed before the Variable was written")
	}
	checkVariables(t, nomad, p)
	checkAPIServer(t, ctx, cp, dir, bins.CRDs)

	before := snapshot(t, ctx, nomad, dir)
	log.Reset()
	if out, err := bootstrap.Run(ctx, cfg); err != nil || out.Pending != "" {
		t.Fatalf("third run: %+v, %v", out, err)
	}
	if after := snapshot(t, ctx, nomad, dir); after != before {
		t.Errorf("a run with nothing to do changed something:\nbefore %s\nafter  %s", before, after)
	}
	if strings.Contains(log.String(), " written") || strings.Contains(log.String(), " created") {
		t.Errorf("a run with nothing to do wrote:\n%s", log.String())
	}

	// The wrong (here: an empty) directory makes a new PKI, which must not replace the running one's anchors.
	wrong := cfg
	wrong.Dir = t.TempDir()
	if _, err := bootstrap.Run(ctx, wrong); err == nil || !strings.Contains(err.Error(), "-replace-pki") {
		t.Fatalf("a run with another -dir: %v, want a refusal naming -replace-pki", err)
	}
	if after := snapshot(t, ctx, nomad, dir); after != before {
		t.Errorf("a refused run with another -dir changed something:\nbefore %s\nafter  %s", before, after)
	}
}

// checkVariables: each Variable holds what the jobs' templates read, and the mesh root's key is in none.
func checkVariables(t *testing.T, nomad *api.Client, p *pki.PKI) {
	t.Helper()
	want := map[string]map[string]string{
		bootstrap.EtcdVariable: {"ca_cert": pki.EtcdCACert, "server_cert": pki.EtcdServerCert, "server_key": pki.EtcdServerKey},
		bootstrap.APIServerVariable: {"etcd_ca_cert": pki.EtcdCACert, "etcd_client_cert": pki.EtcdAPIServerCert,
			"etcd_client_key": pki.EtcdAPIServerKey, "serving_cert": pki.APIServerServingCert, "serving_key": pki.APIServerServingKey,
			"client_ca_cert": pki.APIServerCACert, "sa_signing_key": pki.ServiceAccountKey, "sa_public_key": pki.ServiceAccountPub},
		bootstrap.IstiodVariable: {"apiserver_ca_cert": pki.APIServerCACert, "client_cert": pki.IstiodCert, "client_key": pki.IstiodKey,
			"ca_cert": pki.IstiodCACert, "ca_key": pki.IstiodCAKey, "cert_chain": pki.IstiodCertChain, "root_cert": pki.RootCert},
		bootstrap.ControllerVariable: {"apiserver_ca_cert": pki.APIServerCACert, "client_cert": pki.ControllerCert,
			"client_key": pki.ControllerKey, "root_cert": pki.RootCert},
	}
	rootKey := strings.TrimSpace(string(p.File(pki.RootKey)))
	for path, keys := range want {
		v, _, err := nomad.Variables().Read(path, systemQ)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		for item, file := range keys {
			if v.Items[item] != string(p.File(file)) {
				t.Errorf("%s %s is not %s", path, item, file)
			}
		}
		extra := len(v.Items) - len(keys)
		if path == bootstrap.ControllerVariable {
			extra-- // nomad_token
		}
		if extra != 0 {
			t.Errorf("%s has items %v, want exactly %v", path, keysOf(v.Items), keys)
		}
		for item, val := range v.Items {
			if strings.Contains(val, rootKey) {
				t.Errorf("%s %s holds the mesh root's key", path, item)
			}
		}
	}
}

func keysOf(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func checkFileModes(t *testing.T, dir string) {
	t.Helper()
	err := filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		want := os.FileMode(0o600)
		if fi.IsDir() {
			want = 0o700
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func controllerSecret(t *testing.T, nomad *api.Client) string {
	t.Helper()
	v, _, err := nomad.Variables().Read(bootstrap.ControllerVariable, systemQ)
	if err != nil {
		t.Fatal(err)
	}
	if v.Items["nomad_token"] == "" {
		t.Fatalf("no nomad_token in %s", bootstrap.ControllerVariable)
	}
	return v.Items["nomad_token"]
}

// checkControllerToken: the controller may write a group's Variable in default and watch jobs, but not touch the
// control plane's Variables in istio-system.
func checkControllerToken(t *testing.T, mgmt *api.Client, secret string) {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address, cfg.SecretID = mgmt.Address(), secret
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	def := &api.WriteOptions{Namespace: "default"}
	v := &api.Variable{Namespace: "default", Path: "nomad/jobs/x/y", Items: map[string]string{"istio_token": "t"}}
	if _, _, err := c.Variables().Create(v, def); err != nil {
		t.Errorf("the controller cannot write nomad/jobs/x/y in default: %v", err)
	}
	if _, _, err := c.Variables().Read("nomad/jobs/x/y", &api.QueryOptions{Namespace: "default"}); err != nil {
		t.Errorf("the controller cannot read nomad/jobs/x/y in default: %v", err)
	}
	if _, err := c.Variables().Delete("nomad/jobs/x/y", def); err != nil {
		t.Errorf("the controller cannot destroy nomad/jobs/x/y in default: %v", err)
	}
	if _, _, err := c.Jobs().List(&api.QueryOptions{Namespace: "*"}); err != nil {
		t.Errorf("the controller cannot list jobs in all namespaces: %v", err)
	}
	if _, _, err := c.Allocations().List(&api.QueryOptions{Namespace: "*"}); err != nil {
		t.Errorf("the controller cannot list allocations in all namespaces: %v", err)
	}
	denied := func(what string, err error) {
		if err == nil || !strings.Contains(err.Error(), "403") {
			t.Errorf("the controller %s in istio-system: %v, want 403", what, err)
		}
	}
	// Variables().Read reports a 403 as "not found"; the raw query shows the status.
	var out api.Variable
	_, err = c.Raw().Query("/v1/var/"+bootstrap.IstiodVariable, &out, systemQ)
	denied("read "+bootstrap.IstiodVariable, err)
	sys := &api.WriteOptions{Namespace: bootstrap.Namespace}
	_, _, err = c.Variables().Update(&api.Variable{Namespace: bootstrap.Namespace, Path: bootstrap.IstiodVariable, Items: map[string]string{"ca_key": "x"}}, sys)
	denied("wrote "+bootstrap.IstiodVariable, err)
	_, _, err = c.Variables().Create(&api.Variable{Namespace: bootstrap.Namespace, Path: "nomad/jobs/x/y", Items: map[string]string{"a": "b"}}, sys)
	denied("wrote nomad/jobs/x/y", err)
	_, err = c.Variables().Delete(bootstrap.EtcdVariable, sys)
	denied("destroyed "+bootstrap.EtcdVariable, err)
	_, _, err = c.Jobs().Info("kube-apiserver", systemQ)
	denied("read a job", err)
	_, err = c.Namespaces().Register(&api.Namespace{Name: "evil"}, nil)
	if err == nil {
		t.Errorf("the controller created a Nomad namespace")
	}
}

func kubeconfigClients(t *testing.T, path string) (kubernetes.Interface, dynamic.Interface) {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	return kubeClients(t, cfg)
}

func kubeClients(t *testing.T, cfg *rest.Config) (kubernetes.Interface, dynamic.Interface) {
	t.Helper()
	typed, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return typed, dyn
}

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// checkAPIServer, through the admin kubeconfig the bootstrap wrote: Istio's CRDs, the namespaces and the
// controller's confinement.
func checkAPIServer(t *testing.T, ctx context.Context, cp *controlplane.ControlPlane, dir, crdFile string) {
	t.Helper()
	typed, dyn := kubeconfigClients(t, filepath.Join(dir, bootstrap.AdminKubeconfig))
	crds, err := dyn.Resource(crdGVR).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(crdFile)
	if want := strings.Count(string(data), "\nkind: CustomResourceDefinition"); len(crds.Items) < want || want == 0 {
		t.Errorf("%d CRDs in the API server, %d in %s", len(crds.Items), want, crdFile)
	}
	if _, err := dyn.Resource(crdGVR).Get(ctx, "virtualservices.networking.istio.io", metav1.GetOptions{}); err != nil {
		t.Errorf("%v", err)
	}
	def, err := typed.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{})
	if err != nil || def.Labels[bootstrap.MeshLabel] != "true" {
		t.Errorf("namespace default: labels %v, %v", def.GetLabels(), err)
	}
	if _, err := typed.CoreV1().Namespaces().Get(ctx, bootstrap.Namespace, metav1.GetOptions{}); err != nil {
		t.Errorf("%v", err)
	}
	if _, err := typed.RbacV1().ClusterRoleBindings().Get(ctx, "istio-sidecar:controller", metav1.GetOptions{}); err != nil {
		t.Errorf("%v", err)
	}
	ctrlCfg, err := clientcmd.BuildConfigFromFlags("", cp.ControllerKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	ctrl, _ := kubeClients(t, ctrlCfg)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "unlabelled"}}
	_, err = ctrl.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})
	if err == nil || !strings.Contains(err.Error(), "istio-sidecar.io/mesh=true") {
		t.Errorf("the controller created an unlabelled namespace: %v", err)
	}
	ns.Labels = map[string]string{bootstrap.MeshLabel: "true"}
	ns.Name = "meshed"
	if _, err := ctrl.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Errorf("the controller may not create a labelled namespace: %v", err)
	}
	if _, err := ctrl.CoreV1().Secrets("istio-system").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("the controller listed secrets: %v", err)
	}
}

// snapshot is everything a run could change: each Variable's ModifyIndex, the token's accessor, the policy's
// index, the Nomad namespace's index, the API-server objects' resourceVersions and admin.kubeconfig.
func snapshot(t *testing.T, ctx context.Context, nomad *api.Client, dir string) string {
	t.Helper()
	var b strings.Builder
	for _, path := range allVariables {
		v, _, err := nomad.Variables().Read(path, systemQ)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(path + "@" + strconv.FormatUint(v.ModifyIndex, 10) + " ")
	}
	self, _, err := nomad.ACLTokens().Self(&api.QueryOptions{AuthToken: controllerSecret(t, nomad)})
	if err != nil {
		t.Fatal(err)
	}
	pol, _, err := nomad.ACLPolicies().Info(bootstrap.ControllerPolicyName, nil)
	if err != nil {
		t.Fatal(err)
	}
	ns, _, err := nomad.Namespaces().Info(bootstrap.Namespace, nil)
	if err != nil {
		t.Fatal(err)
	}
	b.WriteString("token=" + self.AccessorID + " policy@" + strconv.FormatUint(pol.ModifyIndex, 10) +
		" ns@" + strconv.FormatUint(ns.ModifyIndex, 10) + " ")
	typed, dyn := kubeconfigClients(t, filepath.Join(dir, bootstrap.AdminKubeconfig))
	crd, err := dyn.Resource(crdGVR).Get(ctx, "virtualservices.networking.istio.io", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	def, err := typed.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	vap, err := typed.AdmissionregistrationV1().ValidatingAdmissionPolicies().Get(ctx, "istio-sidecar-controller-scope", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	role, err := typed.RbacV1().Roles(bootstrap.Namespace).Get(ctx, "istio-sidecar:istiod", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b.WriteString("crd@" + crd.GetResourceVersion() + " default@" + def.ResourceVersion + " vap@" + vap.ResourceVersion +
		" role@" + role.ResourceVersion + " ")
	fi, err := os.Stat(filepath.Join(dir, bootstrap.AdminKubeconfig))
	if err != nil {
		t.Fatal(err)
	}
	b.WriteString("kubeconfig@" + fi.ModTime().String())
	return b.String()
}

// TestBootstrapWithoutACLs: an agent without ACLs, where every job could read the keys, is refused and gets no
// Variable; with -insecure-no-acls it gets the Variables and no policy or token, and is told why that is unsafe.
func TestBootstrapWithoutACLs(t *testing.T) {
	bins := controlplane.BinariesFromEnv(t)
	nomad := devAgent(t, false)
	var log bytes.Buffer
	cfg := bootstrap.Config{Dir: t.TempDir(), CRDs: bins.CRDs, TrustDomain: "cluster.local", Nomad: nomad, Out: &log}
	if _, err := bootstrap.Run(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "-insecure-no-acls") {
		t.Fatalf("bootstrap without ACLs: %v, want a refusal naming -insecure-no-acls", err)
	}
	for _, path := range []string{bootstrap.EtcdVariable, bootstrap.APIServerVariable, bootstrap.IstiodVariable, bootstrap.ControllerVariable} {
		if v, _, err := nomad.Variables().Peek(path, systemQ); err != nil || v != nil {
			t.Errorf("a refused run left Variable %s (%v)", path, err)
		}
	}
	cfg.AllowNoACLs = true
	out, err := bootstrap.Run(context.Background(), cfg)
	if err != nil || out.Pending == "" {
		t.Fatalf("%+v, %v\n%s", out, err, log.String())
	}
	if !strings.Contains(log.String(), "ACLs are disabled") {
		t.Errorf("no word on the missing ACLs:\n%s", log.String())
	}
	v, _, err := nomad.Variables().Read(bootstrap.ControllerVariable, systemQ)
	if err != nil {
		t.Fatal(err)
	}
	if tok, ok := v.Items["nomad_token"]; !ok || tok != "" {
		t.Errorf("nomad_token = %q (present %v), want empty", tok, ok)
	}
}
