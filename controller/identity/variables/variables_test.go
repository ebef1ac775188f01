package variables

import (
	"testing"

	"github.com/hashicorp/nomad/api"
)

func TestSplit(t *testing.T) {
	for path, want := range map[string][2]string{
		"nomad/jobs/web/frontend": {"web", "frontend"},
		"nomad/jobs/team/web/g":   {"team/web", "g"},
		"nomad/jobs/web":          {},
		"nomad/jobs/web/":         {},
		"other/jobs/web/frontend": {},
	} {
		job, group, ok := Split(path)
		if ok != (want != [2]string{}) || job != want[0] || group != want[1] {
			t.Errorf("Split(%q) = %q, %q, %v; want %q", path, job, group, ok, want)
		}
	}
}

func TestOursOnlyWithTheControllersKeys(t *testing.T) {
	ours := api.VariableItems{KeyNamespace: "a", KeyServiceAccount: "b", KeyRefused: "no"}
	if !Ours(&api.Variable{Items: ours}) {
		t.Errorf("a refusal the controller wrote is not recognised")
	}
	for _, items := range []api.VariableItems{
		{KeyNamespace: "a", KeyServiceAccount: "b", "password": "x"},
		{KeyToken: "x"},
	} {
		if Ours(&api.Variable{Items: items}) {
			t.Errorf("Ours(%v): a job owner's variable would be overwritten", items)
		}
	}
}
