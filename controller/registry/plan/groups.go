package plan

import (
	"fmt"
	"sort"

	"github.com/hashicorp/nomad/api"
	"k8s.io/apimachinery/pkg/util/validation"

	identity "github.com/istio-sidecar/istio-sidecar/controller/identity/plan"
)

// mesh is what registration needs to know of a meshed group.
type mesh struct {
	identity.Group
	labels   map[string]string
	sidecars []string // the istio-sidecar tasks, which must be running for the group to be an endpoint
	checks   int      // the Nomad checks the job declares for the group; each must pass
}

// meshedGroups are the groups with an istio-sidecar task of every job, keyed by namespace/job/group, with the
// identity the driver computes for them. The identity side gives none to a stopped job or to the child of a
// periodic or parameterized job (that reads its parent's Variable), but their allocations are still meshed:
// they are planned as if running and parentless, so a stopping job's allocations stay meshed, never plain.
// A group refused an identity has no sidecar istiod accepts: it is meshed, with no endpoints.
func meshedGroups(s State, o Options, warn func(string, ...any)) map[identity.Key]*mesh {
	out := map[identity.Key]*mesh{}
	for _, job := range s.Jobs {
		if job == nil {
			continue
		}
		live := *job
		live.Stop, live.Status, live.ParentID = nil, nil, nil
		for _, g := range identity.Groups(&live, o.Policy) {
			tg := taskGroup(job, g.Group)
			if tg == nil {
				continue
			}
			m := &mesh{Group: g, labels: map[string]string{}, checks: countChecks(tg)}
			for _, task := range tg.Tasks {
				if task.Driver != identity.Driver {
					continue
				}
				m.sidecars = append(m.sidecars, task.Name)
				for k, v := range taskLabels(task.Config["labels"]) {
					if err := labelError(k, v); err != nil {
						warn("group %s: task %q: labels: %v", g.Key, task.Name, err)
						continue
					}
					m.labels[k] = v
				}
			}
			out[g.Key] = m
		}
	}
	return out
}

func taskGroup(job *api.Job, name string) *api.TaskGroup {
	for _, tg := range job.TaskGroups {
		if tg != nil && tg.Name != nil && *tg.Name == name {
			return tg
		}
	}
	return nil
}

// taskLabels reads the sidecar task's `labels`, which the API hands over as a list of maps (HCL blocks) or a map.
func taskLabels(v any) map[string]string {
	out := map[string]string{}
	add := func(m map[string]any) {
		for k, v := range m {
			if s, ok := v.(string); ok {
				out[k] = s
			}
		}
	}
	switch t := v.(type) {
	case map[string]any:
		add(t)
	case []any:
		for _, e := range t {
			if m, ok := e.(map[string]any); ok {
				add(m)
			}
		}
	}
	return out
}

func labelError(k, v string) error {
	if errs := validation.IsQualifiedName(k); len(errs) > 0 {
		return fmt.Errorf("key %q: %s", k, errs[0])
	}
	if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
		return fmt.Errorf("%s=%q: %s", k, v, errs[0])
	}
	return nil
}

// countChecks counts the checks of the group's provider=nomad services, group and task level alike (the job
// as the server returns it names the provider; Consul's checks are Consul's business).
func countChecks(tg *api.TaskGroup) int {
	n := 0
	count := func(ss []*api.Service) {
		for _, s := range ss {
			if s != nil && s.Provider == "nomad" {
				n += len(s.Checks)
			}
		}
	}
	count(tg.Services)
	for _, t := range tg.Tasks {
		count(t.Services)
	}
	return n
}

// ready: the group has an identity, the allocation runs, as do its sidecar tasks, and every Nomad check of the group has passed its
// last run. A check that has not run yet counts as not passed.
func ready(a *api.AllocationListStub, m *mesh, checks api.AllocCheckStatuses) bool {
	if m.Refused != "" {
		return false
	}
	if a.ClientStatus != api.AllocClientStatusRunning || a.DesiredStatus != api.AllocDesiredStatusRun {
		return false
	}
	for _, name := range m.sidecars {
		if ts := a.TaskStates[name]; ts == nil || ts.State != "running" {
			return false
		}
	}
	if len(checks) < m.checks {
		return false
	}
	for _, c := range checks {
		if c.Status != "success" {
			return false
		}
	}
	return true
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
