// Package identity is the controller's `run`: it follows Nomad's jobs and gives every group with an
// istio-sidecar task the identity its sidecar presents to istiod, a TokenRequest token for the group's Istio
// namespace and service account, written into the Variable only that group can read, refreshed before it
// expires and revoked when the group goes. The pieces are in subpackages: policy and plan (pure), watch
// (Nomad's jobs), apiserver (namespaces, service accounts, tokens), variables (the groups' Variables).
package identity

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/api"
	"k8s.io/client-go/kubernetes"

	"github.com/istio-sidecar/istio-sidecar/controller/identity/apiserver"
	"github.com/istio-sidecar/istio-sidecar/controller/identity/plan"
	"github.com/istio-sidecar/istio-sidecar/controller/identity/policy"
	"github.com/istio-sidecar/istio-sidecar/controller/identity/variables"
	"github.com/istio-sidecar/istio-sidecar/controller/identity/watch"
)

// Config is what the controller runs with.
type Config struct {
	Nomad *api.Client
	Kube  kubernetes.Interface
	// Policy says which Nomad namespace may claim which Istio namespace; nil is the default (the same name).
	Policy *policy.Policy
	// RootCert is the mesh root (PEM) every group's Variable carries, for the sidecar to verify istiod.
	RootCert string
	// DiscoveryAddress is istiod's HOST:PORT for the groups' Variables; "" leaves the plugin's discovery_address.
	DiscoveryAddress string
	// TTL is each token's requested lifetime; RefreshBefore is how long before its expiry a token is replaced.
	TTL, RefreshBefore time.Duration
	// Resync is how often everything is listed again, beside the event stream.
	Resync time.Duration
	Log    hclog.Logger
}

// Controller reconciles the groups' identities; it runs in one goroutine and keeps one record per group.
type Controller struct {
	cfg     Config
	kube    apiserver.Client
	vars    variables.Store
	jobs    map[[2]string]*api.Job
	records map[plan.Key]*record
	synced  bool
	// unwritable are the meshed groups that can have no Variable, each logged once.
	unwritable map[plan.Key]string
}

// record is what the controller knows of one group's identity.
type record struct {
	key      plan.Key
	want     plan.Group
	wanted   bool
	variable *api.Variable
	token    *apiserver.Token
	dirty    bool      // act at the next sync
	due      time.Time // act at this time (refresh, or retry after an error)
	backoff  time.Duration
}

// MaxTTL is the longest token lifetime the controller requests; example/control-plane/rbac/controller.yaml
// refuses its identity any longer one.
const MaxTTL = 24 * time.Hour

// New checks cfg and returns a controller.
func New(cfg Config) (*Controller, error) {
	if cfg.TTL < 10*time.Minute {
		return nil, fmt.Errorf("token TTL %s: the API server issues tokens for at least 10m", cfg.TTL)
	}
	if cfg.TTL > MaxTTL {
		return nil, fmt.Errorf("token TTL %s: at most %s, the lifetime the controller's admission policy allows", cfg.TTL, MaxTTL)
	}
	if cfg.RefreshBefore <= 0 || cfg.RefreshBefore >= cfg.TTL {
		return nil, fmt.Errorf("refresh-before %s: must be more than 0 and less than the token TTL %s", cfg.RefreshBefore, cfg.TTL)
	}
	if cfg.Resync <= 0 {
		cfg.Resync = 5 * time.Minute
	}
	if cfg.Log == nil {
		cfg.Log = hclog.NewNullLogger()
	}
	return &Controller{cfg: cfg, kube: apiserver.Client{Kube: cfg.Kube}, vars: variables.Store{Nomad: cfg.Nomad},
		jobs: map[[2]string]*api.Job{}, records: map[plan.Key]*record{}}, nil
}

// Run reconciles until ctx ends; errors are logged and retried, never fatal.
func (c *Controller) Run(ctx context.Context) {
	updates := make(chan watch.Update)
	w := &watch.Watcher{Nomad: c.cfg.Nomad, Log: c.cfg.Log.Named("watch"), Resync: c.cfg.Resync}
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx, updates) }()
	defer func() { <-done }()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case u := <-updates:
			c.apply(ctx, u)
		case <-timer.C:
		}
		if !c.synced {
			continue
		}
		next := c.sync(ctx)
		timer.Reset(max(time.Until(next), 0))
	}
}

// apply records what the watcher learned and marks the groups it touches.
func (c *Controller) apply(ctx context.Context, u watch.Update) {
	if !u.Snapshot {
		k := [2]string{u.Namespace, u.ID}
		if u.Job == nil {
			delete(c.jobs, k)
		} else {
			c.jobs[k] = u.Job
		}
		for key, r := range c.records {
			if key.Namespace == u.Namespace && key.Job == u.ID {
				r.dirty = true
			}
		}
		return
	}
	c.jobs = map[[2]string]*api.Job{}
	for _, j := range u.Jobs {
		c.jobs[[2]string{*j.Namespace, *j.ID}] = j
	}
	c.adopt(ctx)
	for _, r := range c.records {
		r.dirty = true
	}
	c.synced = true
}

// adopt reads the Variables the controller wrote before (it may have restarted), so that their tokens are
// kept until due and the ones of groups that went meanwhile are removed.
func (c *Controller) adopt(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	vs, err := c.vars.List(ctx)
	if err != nil {
		c.cfg.Log.Warn("listing the groups' variables; orphans wait for the next resync", "error", err)
		return
	}
	for _, v := range vs {
		job, group, _ := variables.Split(v.Path)
		key := plan.Key{Namespace: v.Namespace, Job: job, Group: group}
		r := c.records[key]
		if r == nil {
			r = &record{key: key}
			c.records[key] = r
		}
		r.variable = v
		if r.token == nil {
			r.token = c.trusted(key, v)
		}
	}
}

// trusted is the token in a group's Variable when the controller may act on it: bound to the Secret the
// controller makes for that very group, in an Istio namespace the group's Nomad namespace may claim. Anyone who
// may write Variables in the namespace may have put the Variable there; its claims are not verified, so a
// token naming anything else is ignored, never kept, revoked or used to release a service account.
func (c *Controller) trusted(key plan.Key, v *api.Variable) *apiserver.Token {
	raw := v.Items[variables.KeyToken]
	if raw == "" {
		return nil
	}
	tok, err := apiserver.Parse(raw)
	if err != nil || !tok.BoundTo(key.Namespace, key.Job, key.Group) || c.cfg.Policy.Refusal(key.Namespace, tok.Namespace) != "" {
		c.cfg.Log.Warn("ignoring a token in the group's variable that the controller did not mint for it",
			"group", key.String(), "path", key.Path())
		return nil
	}
	return &tok
}

// sync acts on every group that is marked or due, and returns when the next one is due.
func (c *Controller) sync(ctx context.Context) time.Time {
	desired := map[plan.Key]plan.Group{}
	unwritable := map[plan.Key]string{}
	for _, j := range c.jobs {
		for _, g := range plan.Groups(j, c.cfg.Policy) {
			if why := g.Unwritable(); why != "" {
				unwritable[g.Key] = why
				continue
			}
			desired[g.Key] = g
		}
	}
	c.reportUnwritable(unwritable)
	for k, g := range desired {
		r := c.records[k]
		if r == nil {
			r = &record{key: k, dirty: true}
			c.records[k] = r
		}
		if !r.wanted || r.want != g {
			r.want, r.wanted, r.dirty = g, true, true
		}
	}
	next := time.Now().Add(c.cfg.Resync)
	for k, r := range c.records {
		if _, ok := desired[k]; !ok && r.wanted {
			r.wanted, r.dirty = false, true
		}
		if r.dirty || !time.Now().Before(r.due) {
			if gone := c.act(ctx, r, desired); gone {
				delete(c.records, k)
				continue
			}
		}
		if r.due.Before(next) {
			next = r.due
		}
	}
	return next
}

// reportUnwritable logs, once each, the groups the controller gives nothing because no Variable can hold even
// the reason: their owners find it only in the controller's log.
func (c *Controller) reportUnwritable(now map[plan.Key]string) {
	for k, why := range now {
		if c.unwritable[k] != why {
			c.cfg.Log.Error("group gets no identity and no Variable; rename the job or group", "group", k.String(), "reason", why)
		}
	}
	c.unwritable = now
}

// maxBackoff bounds the wait before a failing group is tried again.
const maxBackoff = 5 * time.Minute

// act ensures or removes one group's identity; gone reports that its record can be dropped.
func (c *Controller) act(ctx context.Context, r *record, desired map[plan.Key]plan.Group) (gone bool) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	r.dirty = false
	var err error
	if r.wanted {
		err = c.ensure(ctx, r, desired)
	} else {
		err = c.remove(ctx, r, desired)
	}
	if err == nil {
		r.backoff = 0
		return !r.wanted
	}
	r.backoff = min(max(2*r.backoff, time.Second), maxBackoff)
	r.due = time.Now().Add(r.backoff)
	// Read the Variable afresh next time: a failed check-and-set means someone else wrote it.
	r.variable = nil
	c.cfg.Log.Error("group identity", "group", r.key.String(), "error", err, "retry_in", r.backoff)
	return false
}
