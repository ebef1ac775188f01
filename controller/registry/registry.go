// Package registry is the controller's registration: it makes Nomad's allocations and services the mesh's
// endpoints. Nomad's event stream (services, allocations, jobs) says when to read Nomad again; each read is a
// full listing, planned (plan) and converged on in the API server (apply). Nomad sends no event when a check
// changes, so the checks of meshed allocations are polled every CheckInterval.
package registry

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/api"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/istio-sidecar/istio-sidecar/controller/identity/apiserver"
	"github.com/istio-sidecar/istio-sidecar/controller/identity/policy"
	"github.com/istio-sidecar/istio-sidecar/controller/registry/apply"
	"github.com/istio-sidecar/istio-sidecar/controller/registry/plan"
)

// Config is what registration runs with.
type Config struct {
	Nomad   *api.Client
	Dynamic dynamic.Interface
	Kube    kubernetes.Interface
	// Domain is the mesh's DNS suffix; Policy which Nomad namespace may claim which Istio namespace.
	Domain string
	Policy *policy.Policy
	// Resync is how often everything is read and written again; CheckInterval how often checks are polled.
	Resync, CheckInterval time.Duration
	Log                   hclog.Logger
}

// Controller runs registration in one goroutine (plus the event stream's).
type Controller struct {
	cfg     Config
	applier *apply.Applier
	state   plan.State
	read    bool            // state holds a full read
	warned  map[string]bool // the last plan's warnings, already logged
}

// New checks cfg and returns a controller.
func New(cfg Config) (*Controller, error) {
	if cfg.Domain == "" || strings.Trim(cfg.Domain, ".") != cfg.Domain {
		return nil, fmt.Errorf("domain %q: want a DNS suffix such as cluster.local", cfg.Domain)
	}
	if cfg.Resync <= 0 {
		cfg.Resync = 5 * time.Minute
	}
	if cfg.CheckInterval <= 0 {
		cfg.CheckInterval = 5 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = hclog.NewNullLogger()
	}
	return &Controller{cfg: cfg, applier: &apply.Applier{Dynamic: cfg.Dynamic,
		Namespaces: &apiserver.Client{Kube: cfg.Kube}}}, nil
}

// Run reconciles until ctx ends; errors are logged and retried at the next tick, never fatal.
func (c *Controller) Run(ctx context.Context) {
	kick := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() { defer close(done); c.follow(ctx, kick) }()
	defer func() { <-done }()
	resync := time.NewTicker(c.cfg.Resync)
	defer resync.Stop()
	checks := time.NewTicker(c.cfg.CheckInterval)
	defer checks.Stop()
	for {
		full := false
		select {
		case <-ctx.Done():
			return
		case <-kick:
			full = true
		case <-resync.C:
			full = true
			c.applier.Forget()
		case <-checks.C:
		}
		c.reconcile(ctx, full || !c.read)
	}
}

func (c *Controller) reconcile(ctx context.Context, full bool) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if full {
		s, err := c.readAll(ctx)
		if err != nil && ctx.Err() == nil {
			c.cfg.Log.Warn("reading Nomad's services; trying again", "error", err)
		}
		if err != nil {
			return
		}
		c.state, c.read = s, true
	}
	c.readChecks(ctx, &c.state)
	r := plan.Plan(c.state, plan.Options{Domain: c.cfg.Domain, Policy: c.cfg.Policy})
	// A problem is logged when it appears, not at every check poll while it lasts.
	warned := map[string]bool{}
	for _, w := range r.Warnings {
		if !c.warned[w] {
			c.cfg.Log.Warn("registration", "problem", w)
		}
		warned[w] = true
	}
	c.warned = warned
	if err := c.applier.Apply(ctx, r.Objects); err != nil && ctx.Err() == nil {
		c.cfg.Log.Error("writing WorkloadEntries and ServiceEntries; trying again", "error", err)
	}
}

// topics are the events after which Nomad is read again: a service registered or deregistered, an
// allocation's state (its sidecar started, it stopped), a job changed (its groups' labels or identity).
var topics = map[api.Topic][]string{api.TopicService: {"*"}, api.TopicAllocation: {"*"}, api.TopicJob: {"*"}}

const maxBackoff = time.Minute

// follow sends a kick after every batch of events, and after every (re)connect: events missed while
// disconnected are covered by the full read that follows.
func (c *Controller) follow(ctx context.Context, kick chan<- struct{}) {
	var index uint64
	backoff := time.Second
	for ctx.Err() == nil {
		events, err := c.cfg.Nomad.EventStream().Stream(ctx, topics, index, &api.QueryOptions{Namespace: "*"})
		if err == nil {
			poke(kick)
			err = c.drain(ctx, events, &index, &backoff, kick)
		}
		if ctx.Err() != nil {
			return
		}
		c.cfg.Log.Warn("following Nomad's event stream; reconnecting after backoff", "error", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

func (c *Controller) drain(ctx context.Context, events <-chan *api.Events, index *uint64, backoff *time.Duration, kick chan<- struct{}) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case batch, ok := <-events:
			if !ok {
				return fmt.Errorf("event stream closed")
			}
			if batch.Err != nil {
				return fmt.Errorf("event stream: %w", batch.Err)
			}
			if batch.IsHeartbeat() {
				continue
			}
			*index, *backoff = max(*index, batch.Index), time.Second
			poke(kick)
		}
	}
}

// poke asks for a full read; one pending request stands for any number.
func poke(kick chan<- struct{}) {
	select {
	case kick <- struct{}{}:
	default:
	}
}
