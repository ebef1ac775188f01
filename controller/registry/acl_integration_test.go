package registry

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/istio-sidecar/istio-sidecar/controller/bootstrap"
	"github.com/istio-sidecar/istio-sidecar/internal/nomadtest"
)

// TestControllerPolicyReadsWhatRegistrationReads: with Nomad's ACLs on and the token bootstrap gives the
// controller, registration's full read succeeds and its event stream subscription is accepted (a job
// registered afterwards arrives on it), so it needs nothing beyond the identity side's policy.
func TestControllerPolicyReadsWhatRegistrationReads(t *testing.T) {
	nomad := nomadtest.Start(t)
	nomad.Namespace(t, "team-a")
	tok := nomad.Client(t, bootstrap.ControllerPolicyName, bootstrap.ControllerPolicy)
	c, err := New(Config{Nomad: tok, Domain: "cluster.local"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.readAll(ctx); err != nil {
		t.Fatalf("full read with the controller's policy: %v", err)
	}
	// The control: without read-job the subscription is refused, so the assertion below can fail.
	weak := nomad.Client(t, "list-only", `namespace "*" { capabilities = ["list-jobs"] }`)
	refused, err := weak.EventStream().Stream(ctx, topics, 0, &api.QueryOptions{Namespace: "*"})
	if err == nil {
		if b := <-refused; b.Err == nil {
			t.Fatalf("a token without read-job subscribed to %v", topics)
		}
	}
	events, err := tok.EventStream().Stream(ctx, topics, 0, &api.QueryOptions{Namespace: "*"})
	if err != nil {
		t.Fatal(err)
	}
	ns := "team-a"
	j := api.NewServiceJob("web", "web", "global", 50)
	j.Namespace, j.Datacenters = &ns, []string{"dc1"}
	j.AddTaskGroup(api.NewTaskGroup("g", 1).AddTask(api.NewTask("app", "raw_exec")))
	if _, _, err := nomad.Management.Jobs().Register(j, &api.WriteOptions{Namespace: ns}); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case <-ctx.Done():
			t.Fatal("no event for the job registered in team-a")
		case b := <-events:
			if b.Err != nil {
				t.Fatalf("event stream with the controller's policy: %v", b.Err)
			}
			for _, ev := range b.Events {
				if ev.Topic == api.TopicJob && ev.Key == "web" {
					return
				}
			}
		}
	}
}
