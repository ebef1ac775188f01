// Package plan says what should exist for a Nomad job: for each group with an istio-sidecar task, the Istio
// namespace and service account its sidecar will present, or why it gets no identity. Pure: no Nomad, no API
// server.
package plan

import (
	"fmt"
	"strings"

	"github.com/hashicorp/nomad/api"

	"github.com/istio-sidecar/istio-sidecar/controller/identity/policy"
	"github.com/istio-sidecar/istio-sidecar/driver/istio"
)

// Driver is the task driver whose groups get an identity.
const Driver = "istio-sidecar"

// Key names a group in Nomad.
type Key struct {
	Namespace, Job, Group string
}

// Path is the group's Variable, the one Nomad lets only that group's tasks read.
func (k Key) Path() string { return "nomad/jobs/" + k.Job + "/" + k.Group }

func (k Key) String() string { return k.Namespace + "/" + k.Job + "/" + k.Group }

// Group is what a meshed group should have.
type Group struct {
	Key
	IstioNamespace, ServiceAccount string
	// Refused, when not empty, is why the group gets no token; the job's owner reads it in the Variable.
	Refused string
}

// Groups plans every meshed group of a job; a stopped or dead job has none. Nor has a child of a periodic or
// parameterized job: Nomad's workload identity gives a child its parent's Variables, so the parent's stand.
func Groups(job *api.Job, p *policy.Policy) []Group {
	if job == nil || job.ID == nil || job.Namespace == nil || stopped(job) {
		return nil
	}
	if job.ParentID != nil && *job.ParentID != "" {
		return nil
	}
	var out []Group
	for _, tg := range job.TaskGroups {
		if tg == nil || tg.Name == nil {
			continue
		}
		g, ok := group(*job.Namespace, *tg.Name, tg.Tasks)
		if !ok {
			continue
		}
		g.Key.Job = *job.ID
		if g.Refused == "" {
			g.Refused = p.Refusal(g.Namespace, g.IstioNamespace)
		}
		out = append(out, g)
	}
	return out
}

func stopped(job *api.Job) bool {
	return (job.Stop != nil && *job.Stop) || (job.Status != nil && *job.Status == "dead")
}

// group reads the sidecar tasks of one group; ok is false when it has none.
func group(nomadNamespace, name string, tasks []*api.Task) (g Group, ok bool) {
	g.Key = Key{Namespace: nomadNamespace, Group: name}
	for _, task := range tasks {
		if task == nil || task.Driver != Driver {
			continue
		}
		ns, sa, err := identity(nomadNamespace, task.Config)
		switch {
		case err != nil:
			g.Refused = fmt.Sprintf("task %q: %v", task.Name, err)
		case ok && (ns != g.IstioNamespace || sa != g.ServiceAccount) && g.Refused == "":
			g.Refused = fmt.Sprintf("task %q claims %s/%s but another sidecar task of the group claims %s/%s: "+
				"one group has one identity", task.Name, ns, sa, g.IstioNamespace, g.ServiceAccount)
		}
		if !ok {
			g.IstioNamespace, g.ServiceAccount = ns, sa
		}
		ok = true
	}
	return g, ok
}

// identity is what the driver will compute from the task config, which the API hands over as decoded JSON.
// Interpolation happens on the client, after the controller has minted the token, so it cannot be honoured.
func identity(nomadNamespace string, config map[string]interface{}) (ns, sa string, err error) {
	get := func(field string) (string, error) {
		v, present := config[field]
		if !present {
			return "", nil
		}
		s, isString := v.(string)
		if !isString {
			return "", fmt.Errorf("%s: %v is not a string", field, v)
		}
		if strings.Contains(s, "${") {
			return "", fmt.Errorf("%s: %q: the controller cannot interpolate; name the value literally", field, s)
		}
		return s, nil
	}
	configuredNS, err := get("namespace")
	if err != nil {
		return "", "", err
	}
	configuredSA, err := get("service_account")
	if err != nil {
		return "", "", err
	}
	return istio.Namespace(configuredNS, nomadNamespace), istio.ServiceAccount(configuredSA), nil
}
