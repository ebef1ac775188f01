package xds

import (
	"context"
	"fmt"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	secretv3 "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	"google.golang.org/grpc"
)

// syncSecrets keeps one SDS stream per secret wanted, as Envoy opens one subscription per SdsSecretConfig, and
// ends the streams of secrets no longer named (forgetting the secret).
func (c *Client) syncSecrets(ctx context.Context, want map[SecretRef]bool) {
	for ref, cancel := range c.secrets {
		if !want[ref] {
			cancel()
			delete(c.secrets, ref)
			c.store.remove(SecretType, ref.Name)
		}
	}
	for ref := range want {
		if _, ok := c.secrets[ref]; ok {
			continue
		}
		conn, err := c.sdsConn(ref.Cluster)
		if err != nil {
			// Envoy would reject the config naming it; the secret never arrives and its user stays warming.
			c.log("sds_error", map[string]any{"secret": ref.Name, "error": err.Error()})
			c.secrets[ref] = func() {}
			continue
		}
		sctx, cancel := context.WithCancel(ctx)
		c.secrets[ref] = cancel
		go c.runSecret(sctx, conn, ref)
	}
}

// sdsConn returns the client of an SDS server, by the static cluster that names its socket.
func (c *Client) sdsConn(cluster string) (*grpc.ClientConn, error) {
	path, ok := c.cfg.SDSPaths[cluster]
	if !ok {
		return nil, fmt.Errorf("SDS config source names cluster %q, which is no static pipe cluster of the bootstrap", cluster)
	}
	if conn, ok := c.sdsConns[path]; ok {
		return conn, nil
	}
	conn, err := dialUnix(path)
	if err != nil {
		return nil, fmt.Errorf("SDS server %s: %w", path, err)
	}
	c.sdsConns[path] = conn
	return conn, nil
}

// runSecret subscribes to one secret over SotW SDS (pilot-agent implements no other) until ctx ends,
// reconnecting with backoff.
func (c *Client) runSecret(ctx context.Context, conn *grpc.ClientConn, ref SecretRef) {
	retry := newBackoff()
	for ctx.Err() == nil {
		err := c.secretStream(ctx, conn, ref, retry)
		if ctx.Err() == nil {
			c.log("sds_disconnected", map[string]any{"secret": ref.Name, "error": fmt.Sprint(err)})
		}
		retry.wait(ctx)
	}
}

func (c *Client) secretStream(ctx context.Context, conn *grpc.ClientConn, ref SecretRef, retry *backoff) error {
	stream, err := secretv3.NewSecretDiscoveryServiceClient(conn).StreamSecrets(ctx, grpc.WaitForReady(true))
	if err != nil {
		return err
	}
	req := &discoveryv3.DiscoveryRequest{Node: c.cfg.Node, TypeUrl: SecretType, ResourceNames: []string{ref.Name}}
	for {
		if err := stream.Send(req); err != nil {
			return err
		}
		resp, err := stream.Recv()
		if err != nil {
			return err
		}
		retry.reset()
		u := &update{typeURL: SecretType, version: resp.GetVersionInfo(), nonce: resp.GetNonce()}
		decodeAll(u, resp.GetResources())
		// The node goes on the first request only; the next request answers this response.
		req = &discoveryv3.DiscoveryRequest{TypeUrl: SecretType, ResourceNames: []string{ref.Name},
			VersionInfo: req.GetVersionInfo(), ResponseNonce: u.nonce}
		if u.err != nil {
			req.ErrorDetail = errorStatus(u.err)
		} else {
			req.VersionInfo = u.version
		}
		c.log("sds_update", map[string]any{"secret": ref.Name, "version": u.version, "accepted": u.err == nil,
			"error": errString(u.err)})
		if c.cfg.Hooks.Update != nil {
			c.cfg.Hooks.Update(SecretType, u.version, u.err)
		}
		c.postSecrets(ctx, ref, u)
	}
}

func (c *Client) postSecrets(ctx context.Context, ref SecretRef, u *update) {
	if u.err != nil {
		return
	}
	for _, r := range u.resources {
		if r.name == ref.Name {
			c.post(ctx, secretUpdate{ref: ref, entry: Entry{Name: r.name, Version: u.version, Resource: r.msg, LastUpdated: time.Now()}})
		}
	}
}
