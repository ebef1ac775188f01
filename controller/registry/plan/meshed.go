package plan

import (
	"github.com/hashicorp/nomad/api"

	identity "github.com/istio-sidecar/istio-sidecar/controller/identity/plan"
)

// Meshed says whether an allocation's group has an istio-sidecar task, so that its checks decide its health.
func Meshed(s State, a *api.AllocationListStub) bool {
	job := s.Jobs[[2]string{a.Namespace, a.JobID}]
	if job == nil {
		return false
	}
	tg := taskGroup(job, a.TaskGroup)
	if tg == nil {
		return false
	}
	for _, t := range tg.Tasks {
		if t != nil && t.Driver == identity.Driver {
			return true
		}
	}
	return false
}
