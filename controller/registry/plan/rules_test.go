package plan

import (
	"strings"
	"testing"

	"github.com/hashicorp/nomad/api"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func kinds(r Result) map[string]*unstructured.Unstructured {
	out := map[string]*unstructured.Unstructured{}
	for _, o := range r.Objects {
		out[o.GetKind()+" "+o.GetNamespace()+"/"+o.GetName()] = o
	}
	return out
}

func TestStoppingJobStaysMeshed(t *testing.T) {
	s := scenario()
	s.Jobs[[2]string{"shop", "web"}].Stop = ptr(true)
	got := kinds(Plan(s, Options{Domain: "cluster.local"}))
	se := got["ServiceEntry shop/web"]
	if se == nil {
		t.Fatalf("no ServiceEntry for web: %v", got)
	}
	if _, plain := se.Object["spec"].(map[string]any)["endpoints"]; plain {
		t.Errorf("a stopping meshed job's service became plain: %v", se.Object["spec"])
	}
	if got["WorkloadEntry shop/web-frontend-aaaaaaaa"] == nil {
		t.Errorf("the still-running healthy allocation left the endpoints before it stopped: %v", got)
	}
}

func TestNoEndpointUntilEveryCheckPassed(t *testing.T) {
	s := scenario()
	s.Checks["aaaaaaaa-1111"] = api.AllocCheckStatuses{} // the check has not run yet
	if o := kinds(Plan(s, Options{Domain: "cluster.local"}))["WorkloadEntry shop/web-frontend-aaaaaaaa"]; o != nil {
		t.Errorf("an allocation whose check has not run is an endpoint: %v", o.Object)
	}
	s.Checks["aaaaaaaa-1111"] = checks("pending")
	if o := kinds(Plan(s, Options{Domain: "cluster.local"}))["WorkloadEntry shop/web-frontend-aaaaaaaa"]; o != nil {
		t.Errorf("an allocation with a pending check is an endpoint: %v", o.Object)
	}
}

func TestRefusedGroupHasNoEndpoint(t *testing.T) {
	s := scenario()
	job := s.Jobs[[2]string{"shop", "web"}]
	job.TaskGroups[0].Tasks[0].Config["namespace"] = "istio-system"
	r := Plan(s, Options{Domain: "cluster.local"})
	for _, o := range r.Objects {
		if o.GetKind() == "WorkloadEntry" {
			t.Errorf("a group refused an identity is an endpoint: %s/%s", o.GetNamespace(), o.GetName())
		}
		if o.GetName() == "web" && o.Object["spec"].(map[string]any)["endpoints"] != nil {
			t.Errorf("a refused meshed group became a plain service")
		}
	}
}

func TestHostPortWithoutMapping(t *testing.T) {
	s := scenario()
	s.Allocs["aaaaaaaa-1111"].AllocatedResources.Shared.Ports[0].To = 0 // host mode: no `to`
	s.Services = s.Services[:1]
	se := kinds(Plan(s, Options{Domain: "mesh.example"}))["ServiceEntry shop/web"]
	spec := se.Object["spec"].(map[string]any)
	if n := spec["ports"].([]any)[0].(map[string]any)["number"]; n != int64(25001) {
		t.Errorf("port number %v, want the host port 25001", n)
	}
	if h := spec["hosts"].([]any)[0]; h != "web.shop.svc.mesh.example" {
		t.Errorf("host %v", h)
	}
}

func TestName(t *testing.T) {
	for _, c := range []struct{ job, group, alloc, want string }{
		{"web", "frontend", "0f3c2a1b-9d7e-4c1a-8f00-123456789abc", "web-frontend-0f3c2a1b"},
		{"My_Job.v2", "G", "ABCDEF12-0000", "my-job-v2-g-abcdef12"},
		{strings.Repeat("j", 80), "g", "12345678-x", strings.Repeat("j", 54) + "-12345678"},
	} {
		got := Name(c.job, c.group, c.alloc)
		if got != c.want || len(got) > 63 {
			t.Errorf("Name(%q, %q, %q) = %q, want %q", c.job, c.group, c.alloc, got, c.want)
		}
	}
}

func TestTwoServicesOneEntry(t *testing.T) {
	s := scenario()
	shared := &s.Allocs["aaaaaaaa-1111"].AllocatedResources.Shared
	shared.Ports = append(shared.Ports, api.PortMapping{Label: "admin", Value: 25009, HostIP: "10.0.0.1"})
	s.Services = append(s.Services[:1], reg("r5", "web-admin", "web", "aaaaaaaa-1111", "10.0.0.1", 25009, "protocol=grpc"))
	got := kinds(Plan(s, Options{Domain: "cluster.local"}))
	we := got["WorkloadEntry shop/web-frontend-aaaaaaaa"]
	if we == nil {
		t.Fatalf("no WorkloadEntry: %v", got)
	}
	spec := we.Object["spec"].(map[string]any)
	ports, labels := spec["ports"].(map[string]any), spec["labels"].(map[string]any)
	if ports["http-web"] != int64(25001) || ports["grpc-web-admin"] != int64(25009) {
		t.Errorf("ports %v, want one per service", ports)
	}
	if labels[ServiceLabelPrefix+"web"] != "true" || labels[ServiceLabelPrefix+"web-admin"] != "true" {
		t.Errorf("labels %v, want both services' selectors", labels)
	}
	if got["ServiceEntry shop/web-admin"] == nil {
		t.Errorf("no ServiceEntry for the second service: %v", got)
	}
}

func TestMeshedAndPlainUnderOneName(t *testing.T) {
	s := scenario()
	s.Services = append(s.Services[:1], reg("r6", "web", "db", "dddddddd-4444", "10.0.0.4", 5432))
	r := Plan(s, Options{Domain: "cluster.local"})
	se := kinds(r)["ServiceEntry shop/web"]
	if se == nil || se.Object["spec"].(map[string]any)["endpoints"] != nil {
		t.Fatalf("the meshed service lost its selector: %v", se)
	}
	if len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "dddddddd-4444") {
		t.Errorf("warnings %q, want one naming the plain allocation left out", r.Warnings)
	}
}
