package bootstrap

import (
	"testing"

	"github.com/hashicorp/nomad/api"

	"github.com/istio-sidecar/istio-sidecar/internal/nomadtest"
)

// TestControllerPolicy_GroupVariablesOnly: teams keep a job's secrets in nomad/jobs/<job> (every task of the job
// reads it); the controller's token neither reads nor overwrites those, and still writes and lists the groups'.
func TestControllerPolicy_GroupVariablesOnly(t *testing.T) {
	a := nomadtest.Start(t)
	a.Namespace(t, "team-a")
	a.Namespace(t, Namespace)
	teamA := &api.WriteOptions{Namespace: "team-a"}
	if _, _, err := a.Management.Variables().Create(&api.Variable{Namespace: "team-a", Path: "nomad/jobs/web",
		Items: api.VariableItems{"db_password": "s3cret"}}, teamA); err != nil {
		t.Fatal(err)
	}
	ctl := a.Client(t, "ctl", ControllerPolicy)
	// The api package reports a 403 on a read as "not found": a nil Variable with no error.
	if v, _, err := ctl.Variables().Peek("nomad/jobs/web", &api.QueryOptions{Namespace: "team-a"}); err == nil && v != nil {
		t.Errorf("the controller's token reads team-a's nomad/jobs/web: %v", v.Items)
	}
	if _, _, err := ctl.Variables().Update(&api.Variable{Namespace: "team-a", Path: "nomad/jobs/web",
		Items: api.VariableItems{"db_password": "x"}}, teamA); err == nil {
		t.Errorf("the controller's token overwrote team-a's nomad/jobs/web")
	}
	if _, _, err := ctl.Variables().Create(&api.Variable{Namespace: "team-a", Path: "nomad/jobs/web/frontend",
		Items: api.VariableItems{"namespace": "team-a"}}, teamA); err != nil {
		t.Errorf("the controller's token cannot write a group's Variable: %v", err)
	}
	metas, _, err := ctl.Variables().PrefixList("nomad/jobs/", &api.QueryOptions{Namespace: "*"})
	if err != nil || len(metas) != 1 || metas[0].Path != "nomad/jobs/web/frontend" {
		t.Errorf("the controller's listing: %v %v, want only the group's Variable", metas, err)
	}
}
