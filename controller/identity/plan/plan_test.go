package plan

import (
	"strings"
	"testing"

	"github.com/hashicorp/nomad/api"
)

func job(ns, id string, groups map[string][]*api.Task) *api.Job {
	j := &api.Job{ID: &id, Namespace: &ns}
	for name, tasks := range groups {
		name := name
		j.TaskGroups = append(j.TaskGroups, &api.TaskGroup{Name: &name, Tasks: tasks})
	}
	return j
}

func sidecar(config map[string]interface{}) *api.Task {
	return &api.Task{Name: "istio-proxy", Driver: Driver, Config: config}
}

func TestGroupsComputeWhatTheDriverComputes(t *testing.T) {
	j := job("Team_A", "web", map[string][]*api.Task{
		"frontend": {{Name: "app", Driver: "exec"}, sidecar(nil)},
		"batch":    {{Name: "app", Driver: "exec"}},
	})
	got := Groups(j, nil)
	if len(got) != 1 {
		t.Fatalf("groups = %+v, want only the meshed one", got)
	}
	g := got[0]
	want := Group{Key: Key{"Team_A", "web", "frontend"}, IstioNamespace: "team-a", ServiceAccount: "default"}
	if g != want {
		t.Errorf("group = %+v, want %+v", g, want)
	}
	if g.Path() != "nomad/jobs/web/frontend" {
		t.Errorf("path = %s", g.Path())
	}
}

func TestGroupsRefuse(t *testing.T) {
	for name, c := range map[string]struct {
		tasks []*api.Task
		want  string
	}{
		"another namespace": {[]*api.Task{sidecar(map[string]interface{}{"namespace": "payments"})}, `"payments"`},
		"interpolated":      {[]*api.Task{sidecar(map[string]interface{}{"service_account": "${NOMAD_JOB_ID}"})}, "interpolate"},
		"not a string":      {[]*api.Task{sidecar(map[string]interface{}{"namespace": 3.0})}, "not a string"},
		"two identities": {[]*api.Task{sidecar(nil),
			{Name: "other", Driver: Driver, Config: map[string]interface{}{"service_account": "web"}}}, "one identity"},
	} {
		got := Groups(job("team-a", "web", map[string][]*api.Task{"g": c.tasks}), nil)
		if len(got) != 1 || !strings.Contains(got[0].Refused, c.want) {
			t.Errorf("%s: %+v, want a refusal naming %s", name, got, c.want)
		}
	}
}

func TestStoppedJobAndChildHaveNoGroups(t *testing.T) {
	j := job("default", "web", map[string][]*api.Task{"g": {sidecar(nil)}})
	stop := true
	j.Stop = &stop
	if got := Groups(j, nil); len(got) != 0 {
		t.Errorf("stopped job: %+v", got)
	}
	j.Stop = nil
	if got := Groups(j, nil); len(got) != 1 || got[0].Refused != "" {
		t.Errorf("running job in default: %+v", got)
	}
	parent := "web"
	j.ParentID = &parent
	if got := Groups(j, nil); len(got) != 0 {
		t.Errorf("a dispatched child has its own identity: %+v", got)
	}
}
