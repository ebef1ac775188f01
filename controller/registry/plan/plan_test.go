package plan

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/nomad/api"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.yaml from the planner's output")

func ptr[T any](v T) *T { return &v }

// meshedJob is a bridge-mode group with a sidecar (labels, a namespace of its own), a service with a check.
func meshedJob() *api.Job {
	return &api.Job{ID: ptr("web"), Namespace: ptr("shop"), Status: ptr("running"), TaskGroups: []*api.TaskGroup{{
		Name: ptr("frontend"),
		Services: []*api.Service{{Name: "Web", PortLabel: "http", Provider: "nomad", Tags: []string{"protocol=http"},
			Checks: []api.ServiceCheck{{Type: "http", Path: "/healthz"}}}},
		Tasks: []*api.Task{
			{Name: "sidecar", Driver: "istio-sidecar", Config: map[string]any{
				"service_account": "web", "labels": []any{map[string]any{"version": "v1", "app": "web"}}}},
			{Name: "app", Driver: "raw_exec"},
		},
	}}}
}

func plainJob() *api.Job {
	return &api.Job{ID: ptr("db"), Namespace: ptr("shop"), Status: ptr("running"), TaskGroups: []*api.TaskGroup{{
		Name:     ptr("db"),
		Services: []*api.Service{{Name: "db", PortLabel: "pg", Provider: "nomad", Tags: []string{"protocol=postgres"}}},
		Tasks:    []*api.Task{{Name: "db", Driver: "raw_exec"}},
	}}}
}

func alloc(id, job, group, label, hostIP string, hostPort, to int, sidecar string) *api.AllocationListStub {
	return &api.AllocationListStub{ID: id, Namespace: "shop", JobID: job, TaskGroup: group,
		ClientStatus: "running", DesiredStatus: "run",
		TaskStates:         map[string]*api.TaskState{"sidecar": {State: sidecar}, "app": {State: "running"}},
		AllocatedResources: &api.AllocatedResources{Shared: api.AllocatedSharedResources{Ports: []api.PortMapping{{Label: label, Value: hostPort, To: to, HostIP: hostIP}}}}}
}

func reg(id, name, job, allocID, addr string, port int, tags ...string) *api.ServiceRegistration {
	return &api.ServiceRegistration{ID: id, ServiceName: name, Namespace: "shop", JobID: job, AllocID: allocID,
		Address: addr, Port: port, Tags: tags}
}

func checks(status string) api.AllocCheckStatuses {
	return api.AllocCheckStatuses{"c1": {ID: "c1", Mode: "healthiness", Status: status}}
}

// scenario: three allocations of the meshed group (healthy; check failing; sidecar not yet running) and one
// of a plain service with a protocol tag that is not one of Istio's.
func scenario() State {
	return State{
		Jobs: map[[2]string]*api.Job{{"shop", "web"}: meshedJob(), {"shop", "db"}: plainJob()},
		Allocs: map[string]*api.AllocationListStub{
			"aaaaaaaa-1111": alloc("aaaaaaaa-1111", "web", "frontend", "http", "10.0.0.1", 25001, 8080, "running"),
			"bbbbbbbb-2222": alloc("bbbbbbbb-2222", "web", "frontend", "http", "10.0.0.2", 25002, 8080, "running"),
			"cccccccc-3333": alloc("cccccccc-3333", "web", "frontend", "http", "10.0.0.3", 25003, 8080, "pending"),
			"dddddddd-4444": alloc("dddddddd-4444", "db", "db", "pg", "10.0.0.4", 5432, 0, ""),
		},
		Services: []*api.ServiceRegistration{
			reg("r1", "Web", "web", "aaaaaaaa-1111", "10.0.0.1", 25001, "protocol=http"),
			reg("r2", "Web", "web", "bbbbbbbb-2222", "10.0.0.2", 25002, "protocol=http"),
			reg("r3", "Web", "web", "cccccccc-3333", "10.0.0.3", 25003, "protocol=http"),
			reg("r4", "db", "db", "dddddddd-4444", "10.0.0.4", 5432, "protocol=postgres"),
		},
		Checks: map[string]api.AllocCheckStatuses{
			"aaaaaaaa-1111": checks("success"), "bbbbbbbb-2222": checks("failure"), "cccccccc-3333": checks("success"),
		},
	}
}

func TestPlanGolden(t *testing.T) {
	r := Plan(scenario(), Options{Domain: "cluster.local"})
	var b strings.Builder
	for _, o := range r.Objects {
		y, err := yaml.Marshal(o.Object)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString("---\n" + string(y))
	}
	for _, w := range r.Warnings {
		b.WriteString("# warning: " + w + "\n")
	}
	golden := filepath.Join("testdata", "plan.golden.yaml")
	if *update {
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if b.String() != string(want) {
		t.Errorf("plan differs from %s (go test -update to rewrite, then read the diff):\n%s", golden, b.String())
	}
}
