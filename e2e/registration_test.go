//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/api"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/istio-sidecar/istio-sidecar/controller/registry"
	"github.com/istio-sidecar/istio-sidecar/controller/registry/apply"
	"github.com/istio-sidecar/istio-sidecar/controller/registry/plan"
	"github.com/istio-sidecar/istio-sidecar/e2e/harness"
	"github.com/istio-sidecar/istio-sidecar/internal/controlplane"
)

// TestRegistration: the controller's registration, as its API-server identity, against a real agent running a
// meshed bridge-mode group and a plain raw_exec service, and a real API server and istiod. The meshed
// allocation is a WorkloadEntry at the node's address and mapped host port while its check passes; the plain
// service is a ServiceEntry with its registration as endpoint, to which istiod allocates an address; failing
// the check, stopping the jobs take them out.
func TestRegistration(t *testing.T) {
	cp := controlplane.Start(t, controlplane.BinariesFromEnv(t), controlplane.Options{})
	cp.Kubectl(t, "", "label", "namespace", "default", "istio-sidecar.io/mesh=true")
	agent := meshAgent(t)
	dyn := startRegistration(t, cp, agent.Client)

	agent.PutVariable(t, "nomad/jobs/reg-web", map[string]string{"root_cert": rootCertPEM(t)})
	agent.Register(t, agent.ParseJobVars(t, "registration-meshed.hcl", "", harness.Vars{"testapp_path": testappBin(t)}))
	agent.Register(t, agent.ParseJobVars(t, "registration-plain.hcl", "", harness.Vars{"testapp_path": testappBin(t)}))
	web := agent.WaitAlloc(t, "reg-web", api.AllocClientStatusRunning)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("istio-proxy:\n%s", agent.TaskLogs(t, web.ID, "istio-proxy", "stderr"))
		}
	})
	webReg := registrationOf(t, agent.Client, "reg-web", web.ID)
	weName := plan.Name("reg-web", "app", web.ID)

	// The meshed allocation: the address Nomad registered (the node's) and the host port mapped to 8080.
	we := waitObject(t, dyn, "WorkloadEntry", weName, true)
	spec := we.Object["spec"].(map[string]any)
	if addr, err := netip.ParseAddr(fmt.Sprint(spec["address"])); err != nil || addr.String() != webReg.Address ||
		netip.MustParsePrefix("172.26.64.0/20").Contains(addr) {
		t.Errorf("WorkloadEntry address %v, want the registered node address %s", spec["address"], webReg.Address)
	}
	if p := spec["ports"].(map[string]any)["http-reg-web"]; fmt.Sprint(p) != fmt.Sprint(hostPort(t, web, "http")) {
		t.Errorf("WorkloadEntry port %v, want the host port Nomad mapped, %d", p, hostPort(t, web, "http"))
	}
	if spec["serviceAccount"] != "default" || spec["labels"].(map[string]any)["version"] != "v1" {
		t.Errorf("WorkloadEntry identity and labels: %v", spec)
	}
	se := waitObject(t, dyn, "ServiceEntry", "reg-web", true)
	if got := fmt.Sprint(se.Object["spec"].(map[string]any)["ports"]); got != "[map[name:http-reg-web number:8080 protocol:HTTP]]" {
		t.Errorf("meshed ServiceEntry ports %s", got)
	}

	// The plain service: its registration as a plaintext endpoint, and an address from istiod's allocator.
	plain := agent.WaitAlloc(t, "reg-plain", api.AllocClientStatusRunning)
	plainReg := registrationOf(t, agent.Client, "reg-plain", plain.ID)
	pollUntil(t, meshTimeout, "the plain ServiceEntry with its endpoint and an allocated address", func() (bool, string) {
		o, err := dyn.Resource(apply.Resources["ServiceEntry"]).Namespace("default").Get(context.Background(), "reg-plain", getOpts)
		if err != nil {
			return false, err.Error()
		}
		eps, _, _ := unstructured.NestedSlice(o.Object, "spec", "endpoints")
		addrs, _, _ := unstructured.NestedSlice(o.Object, "status", "addresses")
		want := fmt.Sprintf("[map[address:%s labels:map[security.istio.io/tlsMode:disabled] ports:map[http-reg-plain:%d]]]",
			plainReg.Address, plainReg.Port)
		return fmt.Sprint(eps) == want && len(addrs) > 0, fmt.Sprintf("endpoints %v (want %s), status addresses %v", eps, want, addrs)
	})
	// The same plan that wrote reg-plain left out the job's own address: no ServiceEntry for it. Nomad did
	// register it, so the controller saw it.
	if forged := registrationOf(t, agent.Client, "reg-forged", plain.ID); forged.Address != "172.26.64.250" {
		t.Fatalf("reg-forged registered at %s, want the jobspec's address", forged.Address)
	}
	noForged := func(when string) {
		if _, err := dyn.Resource(apply.Resources["ServiceEntry"]).Namespace("default").Get(context.Background(), "reg-forged", getOpts); err == nil {
			t.Errorf("%s: a ServiceEntry for reg-forged, at the address its job chose", when)
		}
	}
	noForged("with reg-plain's")

	// Health: the check failing takes the allocation out, passing again brings it back.
	unhealthy := filepath.Join(agent.AllocDir(web.ID), "alloc", "unhealthy")
	if err := os.WriteFile(unhealthy, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitObject(t, dyn, "WorkloadEntry", weName, false)
	if err := os.Remove(unhealthy); err != nil {
		t.Fatal(err)
	}
	waitObject(t, dyn, "WorkloadEntry", weName, true)

	noForged("after the reconciles of the health steps")
	agent.StopJob(t, "reg-plain")
	waitObject(t, dyn, "ServiceEntry", "reg-plain", false)
	agent.StopJob(t, "reg-web")
	waitObject(t, dyn, "WorkloadEntry", weName, false)
	waitObject(t, dyn, "ServiceEntry", "reg-web", false)
}

// startRegistration runs the controller's registration in the test, as the controller's API-server identity.
func startRegistration(t *testing.T, cp *controlplane.ControlPlane, nomad *api.Client) dynamic.Interface {
	t.Helper()
	dyn, kube := controllerClients(t, cp)
	c, err := registry.New(registry.Config{Nomad: nomad, Dynamic: dyn, Kube: kube, Domain: "cluster.local",
		CheckInterval: 500 * time.Millisecond, Log: hclog.New(&hclog.LoggerOptions{Name: "registration", Output: testWriter{t}})})
	if err != nil {
		t.Fatal(err)
	}
	runUntilCleanup(t, c.Run)
	return dyn
}

// dynamicClient is the API server's configuration and a dynamic client, as the kubeconfig's identity.
func dynamicClient(t testing.TB, kubeconfig string) (*rest.Config, dynamic.Interface) {
	t.Helper()
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	return rc, dyn
}

// registrationOf is the allocation's registration of a service, once Nomad has it.
func registrationOf(t *testing.T, c *api.Client, service, allocID string) *api.ServiceRegistration {
	t.Helper()
	var reg *api.ServiceRegistration
	pollUntil(t, meshTimeout, "service "+service+" registered", func() (bool, string) {
		regs, _, err := c.Services().Get(service, nil)
		if err != nil {
			return false, err.Error()
		}
		for _, r := range regs {
			if r.AllocID == allocID {
				reg = r
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d registrations", len(regs))
	})
	return reg
}

func hostPort(t testing.TB, a *api.Allocation, label string) int {
	t.Helper()
	for _, p := range a.AllocatedResources.Shared.Ports {
		if p.Label == label {
			return p.Value
		}
	}
	t.Fatalf("allocation %s has no port %q", a.ID, label)
	return 0
}

// waitObject waits until the object in namespace default exists (present) or is gone.
func waitObject(t *testing.T, dyn dynamic.Interface, kind, name string, present bool) *unstructured.Unstructured {
	t.Helper()
	var got *unstructured.Unstructured
	pollUntil(t, meshTimeout, fmt.Sprintf("%s %s present=%v", kind, name, present), func() (bool, string) {
		o, err := dyn.Resource(apply.Resources[kind]).Namespace("default").Get(context.Background(), name, getOpts)
		got = o
		return (err == nil) == present, fmt.Sprint(err)
	})
	return got
}

var getOpts = metav1.GetOptions{}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Logf("%s", p); return len(p), nil }
