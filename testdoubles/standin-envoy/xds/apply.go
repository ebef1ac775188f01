package xds

import (
	"context"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
)

// deps is what a cluster or listener waits for before it is warm.
type deps struct {
	eds     string
	routes  []string
	secrets []SecretRef
}

// depsOf works out a resource's dependencies; an error (a TLS context or connection manager that does not
// decode) rejects the response that carried it.
func depsOf(r resource) (deps, error) {
	var d deps
	var err error
	switch m := r.msg.(type) {
	case *clusterv3.Cluster:
		d.eds = edsName(m)
		d.secrets, err = clusterSecrets(m)
	case *listenerv3.Listener:
		if d.routes, err = listenerRoutes(m); err == nil {
			d.secrets, err = listenerSecrets(m)
		}
	}
	return d, err
}

// stored is an accepted resource with what it waits for, as the store keeps it.
type stored struct {
	Entry
	deps deps
}

// apply accepts or rejects one response, then follows what it changed: subscriptions, secrets, initialisation.
func (c *Client) apply(ctx context.Context, u *update) {
	accepted, err := prepare(u)
	c.send(u.typeURL, c.tr.ack(u, err))
	c.log("xds_update", map[string]any{"type": shortType(u.typeURL), "version": u.version,
		"resources": len(u.resources), "removed": len(u.removed), "accepted": err == nil, "error": errString(err)})
	if c.cfg.Hooks.Update != nil {
		c.cfg.Hooks.Update(u.typeURL, u.version, err)
	}
	if err != nil {
		return
	}
	present := names{}
	for _, s := range accepted {
		c.store.putStored(u.typeURL, s)
		present[s.Name] = true
	}
	for _, n := range u.removed {
		c.store.remove(u.typeURL, n)
	}
	if u.fullState {
		for n := range c.store.names(u.typeURL) {
			if !present[n] {
				c.store.remove(u.typeURL, n)
			}
		}
	}
	c.store.setVersion(u.typeURL, u.version)
	switch u.typeURL {
	case ClusterType:
		c.cdsSeen = true
	case ListenerType:
		c.ldsSeen = true
		c.listenersHook()
	}
	c.resync(ctx)
	c.checkInit()
}

func prepare(u *update) ([]stored, error) {
	if u.err != nil {
		return nil, u.err
	}
	now := time.Now()
	out := make([]stored, 0, len(u.resources))
	for _, r := range u.resources {
		d, err := depsOf(r)
		if err != nil {
			return nil, err
		}
		out = append(out, stored{Entry: Entry{Name: r.name, Version: r.version, Resource: r.msg, LastUpdated: now}, deps: d})
	}
	return out, nil
}

func (c *Client) listenersHook() {
	if c.cfg.Hooks.Listeners == nil {
		return
	}
	var ls []*listenerv3.Listener
	for _, e := range c.store.list(ListenerType) {
		ls = append(ls, e.Resource.(*listenerv3.Listener))
	}
	c.cfg.Hooks.Listeners(ls)
}

// resync subscribes EDS and RDS to exactly the names the clusters and listeners need, and the secrets likewise;
// what is no longer needed is unsubscribed and forgotten, as Envoy drops it with the cluster or listener.
func (c *Client) resync(ctx context.Context) {
	eds, rds := names{}, names{}
	secrets := map[SecretRef]bool{}
	for _, r := range c.cfg.AlwaysSecrets {
		secrets[r] = true
	}
	for _, s := range c.store.storedOf(ClusterType) {
		if s.deps.eds != "" {
			eds[s.deps.eds] = true
		}
		for _, r := range s.deps.secrets {
			secrets[r] = true
		}
	}
	for _, s := range c.store.storedOf(ListenerType) {
		for _, n := range s.deps.routes {
			rds[n] = true
		}
		for _, r := range s.deps.secrets {
			secrets[r] = true
		}
	}
	if c.tr != nil {
		c.sync(EndpointType, eds)
		c.sync(RouteType, rds)
	}
	c.syncSecrets(ctx, secrets)
}

func (c *Client) sync(typeURL string, want names) {
	have := c.subscribed[typeURL]
	if have == nil {
		have = names{}
	}
	add, remove := have.diff(want)
	for _, n := range remove {
		c.store.remove(typeURL, n)
	}
	if len(add) == 0 && len(remove) == 0 {
		return
	}
	c.subscribed[typeURL] = want
	initial := map[string]string{}
	held := c.store.versionsOf(typeURL)
	for _, n := range add {
		if v, ok := held[n]; ok {
			initial[n] = v
		}
	}
	c.send(typeURL, c.tr.subscribe(typeURL, add, remove, initial))
}

// checkInit follows Envoy's initialisation: once every cluster of the first CDS response is warm the listeners
// are requested, and once every listener is warm too the server is initialised (workers start, state LIVE).
func (c *Client) checkInit() {
	if !c.cdsSeen || c.started {
		return
	}
	if !c.ldsRequested {
		if !c.allWarm(ClusterType) {
			return
		}
		c.ldsRequested = true
		if c.tr != nil {
			c.subscribeWildcard(ListenerType)
		}
		return
	}
	if c.ldsSeen && c.allWarm(ListenerType) {
		c.started = true
		c.log("initialized", map[string]any{"clusters": len(c.store.names(ClusterType)),
			"listeners": len(c.store.names(ListenerType))})
		if c.cfg.Hooks.Initialized != nil {
			c.cfg.Hooks.Initialized()
		}
	}
}

func (c *Client) allWarm(typeURL string) bool {
	for _, s := range c.store.storedOf(typeURL) {
		if !c.store.warm(s.deps) {
			return false
		}
	}
	return true
}

// wildcard reports the types subscribed to as a whole, whose SotW responses carry every resource.
func wildcard(typeURL string) bool { return typeURL == ClusterType || typeURL == ListenerType }

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// shortType is a type URL's message name, for log lines.
func shortType(typeURL string) string {
	for i := len(typeURL) - 1; i >= 0; i-- {
		if typeURL[i] == '.' {
			return typeURL[i+1:]
		}
	}
	return typeURL
}
