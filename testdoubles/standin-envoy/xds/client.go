// Package xds is the stand-in Envoy's xDS client. It subscribes over ADS as Envoy does (CDS; EDS for the EDS
// clusters; LDS once the clusters are warm; RDS for the routes the listeners name), fetches the SDS secrets the
// clusters and listeners name over their SDS server, acknowledges what it accepts and rejects (NACKs) what does
// not decode or validate, and keeps what it accepted for the admin API.
//
// It models what a test of the control plane can observe of Envoy, not Envoy's data plane: nothing routes by
// these resources.
package xds

import (
	"context"
	"fmt"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Config is what the bootstrap tells the client.
type Config struct {
	Node *corev3.Node
	// ADSPath is the unix socket of the ADS server (the bootstrap's xds-grpc cluster: pilot-agent's XDS proxy).
	ADSPath string
	// Delta selects DeltaAggregatedResources (ads_config.api_type DELTA_GRPC) over StreamAggregatedResources.
	Delta bool
	// SDSPaths maps the static clusters that serve SDS (sds-grpc) to their unix sockets.
	SDSPaths map[string]string
	// AlwaysSecrets are fetched whether or not a resource names them.
	AlwaysSecrets []SecretRef
	Hooks         Hooks
}

// Hooks tell the caller what happened; each may be nil. They run on the client's goroutines, so they must be safe
// for concurrent use, and must not block.
type Hooks struct {
	// Update follows each response: err is nil when it was accepted, else the reason it was rejected.
	Update func(typeURL, version string, err error)
	// Connected follows the ADS stream going up or down.
	Connected func(up bool)
	// Initialized is called once: the first clusters are warm, then the first listeners are.
	Initialized func()
	// Listeners follows every accepted LDS response with all listeners.
	Listeners func([]*listenerv3.Listener)
	Log       func(kind string, fields map[string]any)
}

// Client is a running subscription. Snapshot may be called from any goroutine.
type Client struct {
	cfg    Config
	store  *store
	events chan any

	// Owned by the loop.
	tr                    transport
	subscribed            map[string]names
	secrets               map[SecretRef]context.CancelFunc
	sdsConns              map[string]*grpc.ClientConn
	cdsSeen, ldsSeen      bool
	ldsRequested, started bool
}

type streamUp struct{ tr transport }
type streamDown struct {
	tr  transport
	err error
}
type response struct {
	tr transport
	u  *update
}
type secretUpdate struct {
	ref   SecretRef
	entry Entry
}

// Start connects and subscribes until ctx ends.
func Start(ctx context.Context, cfg Config) (*Client, error) {
	conn, err := dialUnix(cfg.ADSPath)
	if err != nil {
		return nil, fmt.Errorf("ADS server %s: %w", cfg.ADSPath, err)
	}
	c := &Client{cfg: cfg, store: newStore(), events: make(chan any), secrets: map[SecretRef]context.CancelFunc{},
		sdsConns: map[string]*grpc.ClientConn{}}
	go c.streams(ctx, conn)
	go c.loop(ctx)
	return c, nil
}

// dialUnix makes a client for a unix socket; it connects lazily and again after every failure.
func dialUnix(path string) (*grpc.ClientConn, error) {
	// gRPC's unix:PATH is relative to the working directory, unix://PATH absolute.
	return grpc.NewClient("unix:"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
}

func (c *Client) log(kind string, fields map[string]any) {
	if c.cfg.Hooks.Log != nil {
		c.cfg.Hooks.Log(kind, fields)
	}
}

// post hands an event to the loop unless ctx ended.
func (c *Client) post(ctx context.Context, ev any) bool {
	select {
	case c.events <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}

// streams keeps one ADS stream open, reopening it with backoff as Envoy does, and feeds its responses to the loop.
func (c *Client) streams(ctx context.Context, conn *grpc.ClientConn) {
	defer conn.Close()
	retry := newBackoff()
	for ctx.Err() == nil {
		sctx, cancel := context.WithCancel(ctx)
		tr, err := openTransport(sctx, conn, c.cfg.Delta, c.cfg.Node)
		if err == nil && c.post(ctx, streamUp{tr}) {
			for {
				u, rerr := tr.recv()
				if rerr != nil {
					err = rerr
					break
				}
				retry.reset()
				if !c.post(ctx, response{tr, u}) {
					break
				}
			}
			c.post(ctx, streamDown{tr, err})
		}
		cancel()
		retry.wait(ctx)
	}
}

func (c *Client) loop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			for _, cancel := range c.secrets {
				cancel()
			}
			for _, conn := range c.sdsConns {
				_ = conn.Close()
			}
			return
		case ev := <-c.events:
			c.handle(ctx, ev)
		}
	}
}

func (c *Client) handle(ctx context.Context, ev any) {
	switch e := ev.(type) {
	case streamUp:
		c.tr, c.subscribed = e.tr, map[string]names{}
		c.log("xds_connected", map[string]any{"delta": c.cfg.Delta})
		c.hook(true)
		c.subscribeWildcard(ClusterType)
		if c.ldsRequested {
			c.subscribeWildcard(ListenerType)
		}
		c.resync(ctx)
	case streamDown:
		if e.tr == c.tr {
			c.tr = nil
			c.log("xds_disconnected", map[string]any{"error": fmt.Sprint(e.err)})
			c.hook(false)
		}
	case response:
		if e.tr == c.tr {
			c.apply(ctx, e.u)
		}
	case secretUpdate:
		if _, wanted := c.secrets[e.ref]; !wanted {
			return // a stream ended since it received this
		}
		c.store.put(SecretType, e.entry)
		c.checkInit()
	}
}

func (c *Client) hook(up bool) {
	if c.cfg.Hooks.Connected != nil {
		c.cfg.Hooks.Connected(up)
	}
}

// subscribeWildcard opens a wildcard subscription, resuming from the versions held.
func (c *Client) subscribeWildcard(typeURL string) {
	c.subscribed[typeURL] = names{}
	c.send(typeURL, c.tr.subscribe(typeURL, nil, nil, c.store.versionsOf(typeURL)))
}

// send logs a failed send; the receiving side sees the broken stream and reconnects.
func (c *Client) send(typeURL string, err error) {
	if err != nil {
		c.log("xds_send_error", map[string]any{"type": typeURL, "error": err.Error()})
	}
}

// backoff is Envoy's reconnect policy in spirit: quick at first, at most a few seconds apart.
type backoff struct{ next time.Duration }

func newBackoff() *backoff { return &backoff{next: 100 * time.Millisecond} }

func (b *backoff) reset() { b.next = 100 * time.Millisecond }

func (b *backoff) wait(ctx context.Context) {
	t := time.NewTimer(b.next)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	if b.next *= 2; b.next > 5*time.Second {
		b.next = 5 * time.Second
	}
}

// Snapshot returns everything accepted so far.
func (c *Client) Snapshot() Snapshot { return c.store.snapshot() }
