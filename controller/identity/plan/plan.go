// Package plan says what should exist for a Nomad job: for each group with an istio-sidecar task, the Istio
// namespace and service account its sidecar will present, or why it gets no identity. Pure: no Nomad, no API
// server.
package plan

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/hashicorp/nomad/api"
	"k8s.io/apimachinery/pkg/util/validation"

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

// variablePath is the pattern Nomad v1.6.3 requires of a whole Variable path (nomad/structs/variables.go).
var variablePath = regexp.MustCompile(`^[a-zA-Z0-9-_~/]{1,128}$`)

// Unwritable is why the group can have no Variable of its own, so that not even a refusal can reach its owner;
// empty when it can. A group name with '/' is refused so: job "a" group "b/c" and job "a/b" group "c" would
// share nomad/jobs/a/b/c, and no group may read or take another's.
func (k Key) Unwritable() string {
	if strings.Contains(k.Group, "/") {
		return fmt.Sprintf("group name %q holds '/': its Variable %s could be another job's group's", k.Group, k.Path())
	}
	if !variablePath.MatchString(k.Path()) {
		return fmt.Sprintf("Variable path %q (job %q, group %q) is not one Nomad accepts: at most 128 of "+
			"letters, digits, '-', '_', '~' and '/'", k.Path(), k.Job, k.Group)
	}
	return ""
}

func (k Key) String() string { return k.Namespace + "/" + k.Job + "/" + k.Group }

// Group is what a meshed group should have.
type Group struct {
	Key
	IstioNamespace, ServiceAccount string
	// Refused, when not empty, is why the group gets no token; the job's owner reads it in the Variable.
	Refused string
}

// Groups plans every meshed group of a job; a stopped or dead job has none. Nor has a child of a periodic or
// parameterized job: Nomad's workload identity names a child by its parent's job ID, so the child's templates
// read the parent's Variable (they use NOMAD_JOB_PARENT_ID when it is set), which the parent's plan provides.
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
			g.Refused = invalid(g)
		}
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

// invalid is why the API server would reject the group's names, decided before anything is made for it.
func invalid(g Group) string {
	if !istio.IsDNSLabel(g.IstioNamespace) {
		return fmt.Sprintf("namespace %q is not a DNS label (at most 63 lower-case letters, digits and '-', "+
			"starting and ending with a letter or digit)", g.IstioNamespace)
	}
	if errs := validation.IsDNS1123Subdomain(g.ServiceAccount); len(errs) > 0 {
		return fmt.Sprintf("service_account %q is not a DNS-1123 subdomain: %s", g.ServiceAccount, strings.Join(errs, "; "))
	}
	return ""
}
