package plan

import (
	"strings"
	"testing"

	"github.com/hashicorp/nomad/api"

	"github.com/istio-sidecar/istio-sidecar/controller/identity/policy"
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
	p, err := policy.Parse([]byte(`{"Team_A": ["team-a"]}`))
	if err != nil {
		t.Fatal(err)
	}
	got := Groups(j, p)
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
		"bad service account": {[]*api.Task{sidecar(map[string]interface{}{"service_account": "Web_Frontend"})},
			`service_account "Web_Frontend"`},
		"long service account": {[]*api.Task{sidecar(map[string]interface{}{"service_account": strings.Repeat("a", 254)})},
			"service_account"},
		"bad namespace": {[]*api.Task{sidecar(map[string]interface{}{"namespace": "Team_A"})}, `namespace "Team_A"`},
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

func TestUnwritableGroups(t *testing.T) {
	for _, c := range []struct {
		key  Key
		want string
	}{
		{Key{"team-a", "web.v2", "g"}, `"web.v2"`},
		{Key{"team-a", "web", strings.Repeat("g", 120)}, "at most 128"},
		{Key{"team-a", "a", "b/c"}, `group name "b/c"`},
		{Key{"team-a", "a/b", "c"}, ""},
		{Key{"team-a", "web-1_~", "frontend"}, ""},
	} {
		if got := c.key.Unwritable(); (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("%s: Unwritable = %q, want one naming %s", c.key, got, c.want)
		}
	}
}
