package identity

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/istio-sidecar/istio-sidecar/controller/identity/apiserver"
	"github.com/istio-sidecar/istio-sidecar/controller/identity/plan"
	"github.com/istio-sidecar/istio-sidecar/controller/identity/variables"
)

// ensure brings one wanted group to its identity: a fresh enough token in its Variable, or the reason it
// gets none.
func (c *Controller) ensure(ctx context.Context, r *record, desired map[plan.Key]plan.Group) error {
	if err := c.readVariable(ctx, r); err != nil {
		return err
	}
	g := r.want
	refusal := g.Refused
	if refusal == "" {
		var err error
		if refusal, err = c.kube.EnsureNamespace(ctx, g.IstioNamespace); err != nil {
			return err
		}
	}
	if refusal != "" {
		if err := c.revoke(ctx, r, desired); err != nil {
			return err
		}
		r.due = time.Now().Add(c.cfg.Resync)
		return c.write(ctx, r, map[string]string{variables.KeyRefused: refusal,
			variables.KeyNamespace: g.IstioNamespace, variables.KeyServiceAccount: g.ServiceAccount})
	}
	if err := c.kube.EnsureServiceAccount(ctx, g.IstioNamespace, g.ServiceAccount); err != nil {
		return err
	}
	if !c.fresh(r) {
		if err := c.mint(ctx, r, desired); err != nil {
			return err
		}
	}
	r.due = r.token.Expires.Add(-c.cfg.RefreshBefore)
	items := map[string]string{
		variables.KeyToken:          r.token.JWT,
		variables.KeyRootCert:       c.cfg.RootCert,
		variables.KeyNamespace:      g.IstioNamespace,
		variables.KeyServiceAccount: g.ServiceAccount,
		variables.KeyExpires:        r.token.Expires.UTC().Format(time.RFC3339),
	}
	if c.cfg.DiscoveryAddress != "" {
		items[variables.KeyDiscoveryAddress] = c.cfg.DiscoveryAddress
	}
	return c.write(ctx, r, items)
}

// fresh reports whether the group's token is for what it wants now and not yet due for refresh.
func (c *Controller) fresh(r *record) bool {
	t, g := r.token, r.want
	return t != nil && t.Namespace == g.IstioNamespace && t.ServiceAccount == g.ServiceAccount &&
		t.Secret == apiserver.SecretName(g.Namespace, g.Job, g.Group) &&
		time.Now().Before(t.Expires.Add(-c.cfg.RefreshBefore))
}

// mint replaces the group's token; one for another Istio namespace is revoked first.
func (c *Controller) mint(ctx context.Context, r *record, desired map[plan.Key]plan.Group) error {
	g := r.want
	if r.token != nil && r.token.Namespace != g.IstioNamespace {
		if err := c.revoke(ctx, r, desired); err != nil {
			return err
		}
	}
	old := r.token
	tok, err := c.kube.Mint(ctx, apiserver.Group{NomadNamespace: g.Namespace, Job: g.Job, Group: g.Group,
		Namespace: g.IstioNamespace, ServiceAccount: g.ServiceAccount}, c.cfg.TTL, old)
	if err != nil {
		return err
	}
	r.token = &tok
	c.cfg.Log.Info("minted token", "group", r.key.String(), "namespace", tok.Namespace,
		"service_account", tok.ServiceAccount, "expires", tok.Expires.UTC().Format(time.RFC3339))
	if old != nil && old.ServiceAccount != tok.ServiceAccount {
		return c.releaseServiceAccount(ctx, old.Namespace, old.ServiceAccount, desired)
	}
	return nil
}

// remove takes away what the controller made for a group that is gone: its token, its service account when
// no other group uses it, its Variable.
func (c *Controller) remove(ctx context.Context, r *record, desired map[plan.Key]plan.Group) error {
	if err := c.readVariable(ctx, r); err != nil && !errors.Is(err, errForeign) {
		return err
	}
	if err := c.revoke(ctx, r, desired); err != nil {
		return err
	}
	if r.variable != nil {
		if err := c.vars.Delete(ctx, r.variable); err != nil {
			return err
		}
		c.cfg.Log.Info("removed identity", "group", r.key.String())
	}
	return nil
}

// revoke deletes the Secret the group's token is bound to, which the API server then refuses, and releases
// its service account if no group wants it any more.
func (c *Controller) revoke(ctx context.Context, r *record, desired map[plan.Key]plan.Group) error {
	t := r.token
	if t == nil {
		return nil
	}
	if t.Secret != "" {
		if err := c.kube.Revoke(ctx, t.Namespace, t.Secret, t.SecretUID); err != nil {
			return err
		}
	}
	r.token = nil
	c.cfg.Log.Info("revoked token", "group", r.key.String(), "namespace", t.Namespace, "service_account", t.ServiceAccount)
	return c.releaseServiceAccount(ctx, t.Namespace, t.ServiceAccount, desired)
}

func (c *Controller) releaseServiceAccount(ctx context.Context, ns, sa string, desired map[plan.Key]plan.Group) error {
	for _, g := range desired {
		if g.IstioNamespace == ns && g.ServiceAccount == sa && g.Refused == "" {
			return nil
		}
	}
	return c.kube.ReleaseServiceAccount(ctx, ns, sa)
}

// errForeign marks a Variable at a group's path that the controller did not write.
var errForeign = errors.New("it holds keys the controller does not write")

// readVariable loads the group's Variable when the record has none in hand; one the controller did not write
// is never overwritten or deleted.
func (c *Controller) readVariable(ctx context.Context, r *record) error {
	if r.variable != nil {
		return nil
	}
	v, err := c.vars.Read(ctx, r.key.Namespace, r.key.Path())
	if err != nil {
		return err
	}
	if v != nil && !variables.Ours(v) {
		return fmt.Errorf("variable %s in namespace %s: %w; remove it so the controller can write the group's identity",
			r.key.Path(), r.key.Namespace, errForeign)
	}
	r.variable = v
	if v != nil && r.token == nil {
		r.token = c.trusted(r.key, v)
	}
	return nil
}

// write stores the group's Variable when its content changed.
func (c *Controller) write(ctx context.Context, r *record, items map[string]string) error {
	v, err := c.vars.Write(ctx, r.key.Namespace, r.key.Path(), items, r.variable)
	if err != nil {
		return err
	}
	if v != r.variable {
		c.cfg.Log.Info("wrote variable", "group", r.key.String(), "path", r.key.Path())
	}
	r.variable = v
	return nil
}
