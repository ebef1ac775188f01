// Package watch follows Nomad's jobs for the controller: a full listing when it starts, after every reconnect
// and every resync period, and in between Nomad's event stream (jobs, and the evaluations of deregistrations),
// resumed from the last index seen, so that a change is acted on in moments and none is missed.
package watch

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/api"

	"github.com/istio-sidecar/istio-sidecar/controller/identity/policy"
	"github.com/istio-sidecar/istio-sidecar/controller/nomaderr"
)

// Update is what the watcher learned: a full listing (Snapshot) or one job's current state (Job nil: gone).
type Update struct {
	Snapshot      bool
	Jobs          []*api.Job
	Namespace, ID string
	Job           *api.Job
}

// Watcher lists and streams jobs with Nomad's client.
type Watcher struct {
	Nomad  *api.Client
	Log    hclog.Logger
	Resync time.Duration
}

const maxBackoff = time.Minute

// Run sends updates until ctx ends. Errors are logged and retried with backoff; it never gives up.
func (w *Watcher) Run(ctx context.Context, out chan<- Update) {
	var index uint64
	backoff := time.Second
	for ctx.Err() == nil {
		var err error
		if index, err = w.relist(ctx, index, out); err == nil {
			backoff = time.Second
			err = w.stream(ctx, &index, out)
		}
		if ctx.Err() != nil {
			return
		}
		w.Log.Warn("watching Nomad's jobs; listing again after backoff", "error", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// relist sends a full listing and returns the index to stream from.
func (w *Watcher) relist(ctx context.Context, index uint64, out chan<- Update) (uint64, error) {
	stubs, meta, err := w.Nomad.Jobs().List((&api.QueryOptions{Namespace: "*"}).WithContext(ctx))
	if err != nil {
		return index, fmt.Errorf("listing jobs: %w", err)
	}
	jobs := make([]*api.Job, 0, len(stubs))
	for _, s := range stubs {
		if s.Namespace == policy.Reserved {
			continue
		}
		job, err := w.info(ctx, s.Namespace, s.ID)
		if err != nil {
			return index, err
		}
		if job != nil {
			jobs = append(jobs, job)
		}
	}
	if !send(ctx, out, Update{Snapshot: true, Jobs: jobs}) {
		return index, ctx.Err()
	}
	return max(index, meta.LastIndex), nil
}

// info is a job's current state, nil when it is gone.
func (w *Watcher) info(ctx context.Context, ns, id string) (*api.Job, error) {
	job, _, err := w.Nomad.Jobs().Info(id, (&api.QueryOptions{Namespace: ns}).WithContext(ctx))
	if err != nil {
		if nomaderr.NotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("reading job %s in namespace %s: %w", id, ns, err)
	}
	return job, nil
}

// topics are the events that change what the controller wants. Nomad 1.6 sends no Job event when a job is
// purged, only the evaluation the purge creates, so that one is followed too.
var topics = map[api.Topic][]string{api.TopicJob: {"*"}, api.TopicEvaluation: {"*"}}

// jobOf names the job an event is about, if it is one the controller acts on.
func jobOf(ev api.Event) (ns, id string, ok bool) {
	switch {
	case ev.Topic == api.TopicJob:
		job, err := ev.Job()
		if err != nil || job == nil || job.Namespace == nil {
			return "", "", false
		}
		return *job.Namespace, ev.Key, true
	case ev.Topic == api.TopicEvaluation && ev.Type == "JobDeregistered":
		eval, err := ev.Evaluation()
		if err != nil || eval == nil {
			return "", "", false
		}
		return eval.Namespace, eval.JobID, true
	}
	return "", "", false
}

// stream follows the Job topic from *index, relisting every resync period, until an error.
func (w *Watcher) stream(ctx context.Context, index *uint64, out chan<- Update) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events, err := w.Nomad.EventStream().Stream(sctx, topics, *index,
		&api.QueryOptions{Namespace: "*"})
	if err != nil {
		return fmt.Errorf("event stream: %w", err)
	}
	resync := time.NewTicker(w.Resync)
	defer resync.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-resync.C:
			if *index, err = w.relist(ctx, *index, out); err != nil {
				return err
			}
		case batch, ok := <-events:
			if !ok {
				return fmt.Errorf("event stream closed")
			}
			if batch.Err != nil {
				return fmt.Errorf("event stream: %w", batch.Err)
			}
			if err := w.apply(ctx, batch, out); err != nil {
				return err
			}
			*index = max(*index, batch.Index)
		}
	}
}

// apply reads the current state of every job an event batch names.
func (w *Watcher) apply(ctx context.Context, batch *api.Events, out chan<- Update) error {
	seen := map[[2]string]bool{}
	for _, ev := range batch.Events {
		ns, id, ok := jobOf(ev)
		if !ok {
			continue
		}
		k := [2]string{ns, id}
		if k[0] == policy.Reserved || seen[k] {
			continue
		}
		seen[k] = true
		job, err := w.info(ctx, k[0], k[1])
		if err != nil {
			return err
		}
		if !send(ctx, out, Update{Namespace: k[0], ID: k[1], Job: job}) {
			return ctx.Err()
		}
	}
	return nil
}

func send(ctx context.Context, out chan<- Update, u Update) bool {
	select {
	case out <- u:
		return true
	case <-ctx.Done():
		return false
	}
}
