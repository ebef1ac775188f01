package variables

import (
	"context"
	"net"
	"testing"
	"time"

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
	ours := api.VariableItems{KeyNamespace: "a", KeyServiceAccount: "b", KeyRefused: "no", KeyManagedBy: ManagedBy}
	if !Ours(&api.Variable{Items: ours}) {
		t.Errorf("a refusal the controller wrote is not recognised")
	}
	for _, items := range []api.VariableItems{
		{KeyNamespace: "a", KeyServiceAccount: "b", "password": "x", KeyManagedBy: ManagedBy},
		{KeyNamespace: "a", KeyServiceAccount: "b", KeyRefused: "a user's own, no marker"},
		{KeyNamespace: "a", KeyServiceAccount: "b", KeyManagedBy: "someone-else"},
		{KeyToken: "x"},
	} {
		if Ours(&api.Variable{Items: items}) {
			t.Errorf("Ours(%v): a job owner's variable would be overwritten", items)
		}
	}
}

// TestCallsEndWithTheirContext: a Nomad that never answers holds the controller only as long as its context,
// so a timeout or SIGTERM bounds every Variable call.
func TestCallsEndWithTheirContext(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, never answered
		}
	}()
	nomad, err := api.NewClient(&api.Config{Address: "http://" + l.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	s := Store{Nomad: nomad}
	for name, call := range map[string]func(ctx context.Context) error{
		"read": func(ctx context.Context) error { _, err := s.Read(ctx, "default", "nomad/jobs/a/b"); return err },
		"list": func(ctx context.Context) error { _, err := s.List(ctx); return err },
		"write": func(ctx context.Context) error {
			_, err := s.Write(ctx, "default", "nomad/jobs/a/b", map[string]string{KeyNamespace: "a"}, nil)
			return err
		},
		"delete": func(ctx context.Context) error {
			return s.Delete(ctx, &api.Variable{Namespace: "default", Path: "nomad/jobs/a/b", ModifyIndex: 1})
		},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		done := make(chan error, 1)
		go func() { done <- call(ctx) }()
		select {
		case err := <-done:
			if err == nil {
				t.Errorf("%s: no error from a Nomad that never answered", name)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("%s: still waiting 10s after its context ended", name)
		}
		cancel()
	}
}
