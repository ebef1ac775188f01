package watch

import (
	"testing"

	"github.com/hashicorp/nomad/api"
)

func TestJobOf(t *testing.T) {
	for _, c := range []struct {
		ev     api.Event
		ns, id string
		ok     bool
	}{
		{api.Event{Topic: api.TopicJob, Type: "JobRegistered", Key: "web",
			Payload: map[string]interface{}{"Job": map[string]interface{}{"ID": "web", "Namespace": "team-a"}}}, "team-a", "web", true},
		// A purge sends no Job event, only its evaluation.
		{api.Event{Topic: api.TopicEvaluation, Type: "JobDeregistered", Key: "e1",
			Payload: map[string]interface{}{"Evaluation": map[string]interface{}{"JobID": "web", "Namespace": "team-a"}}}, "team-a", "web", true},
		{api.Event{Topic: api.TopicEvaluation, Type: "EvaluationUpdated", Key: "e1",
			Payload: map[string]interface{}{"Evaluation": map[string]interface{}{"JobID": "web", "Namespace": "team-a"}}}, "", "", false},
	} {
		ns, id, ok := jobOf(c.ev)
		if ns != c.ns || id != c.id || ok != c.ok {
			t.Errorf("jobOf(%s %s) = %q %q %v, want %q %q %v", c.ev.Topic, c.ev.Type, ns, id, ok, c.ns, c.id, c.ok)
		}
	}
}
