package main

import (
	"context"
	"fmt"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/istio-sidecar/istio-sidecar/testdoubles/standin-envoy/xds"
)

// istioSDSCluster is the static cluster of Istio's bootstrap that points at pilot-agent's SDS server. The
// stand-in always asks it for the workload certificate and the mesh root, the secrets every sidecar needs.
const istioSDSCluster = "sds-grpc"

var alwaysSecrets = []xds.SecretRef{{Name: "default", Cluster: istioSDSCluster}, {Name: "ROOTCA", Cluster: istioSDSCluster}}

// startXDS subscribes as the bootstrap's dynamic_resources say. The server stays INITIALIZING until the client
// reports the first clusters and listeners warm.
func (p *proxy) startXDS() error {
	cfg, err := xdsConfig(p.boot)
	if err != nil {
		return err
	}
	cfg.Hooks = xds.Hooks{
		Update:      p.countUpdate,
		Connected:   p.connected,
		Initialized: p.initialized,
		Listeners:   p.onListeners,
		Log:         p.events.event,
	}
	p.setState(stateInitializing)
	client, err := xds.Start(context.Background(), cfg)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.xds = client
	p.mu.Unlock()
	return nil
}

// xdsConfig reads the ADS server and the SDS servers from the bootstrap. Pipe paths are relative to the working
// directory Envoy inherits from pilot-agent, and are made absolute here once.
func xdsConfig(b *bootstrap) (xds.Config, error) {
	ads := b.proto.GetDynamicResources().GetAdsConfig()
	if ads == nil {
		return xds.Config{}, fmt.Errorf("bootstrap has no dynamic_resources.ads_config, so no control plane to ask "+
			"(%s=%s runs the stand-in without one)", envControlPlane, controlPlaneNone)
	}
	cfg := xds.Config{Node: b.proto.GetNode(), SDSPaths: map[string]string{}, AlwaysSecrets: alwaysSecrets}
	switch ads.GetApiType() {
	case corev3.ApiConfigSource_DELTA_GRPC:
		cfg.Delta = true
	case corev3.ApiConfigSource_GRPC:
	default:
		return xds.Config{}, fmt.Errorf("dynamic_resources.ads_config.api_type %s: the stand-in speaks GRPC and DELTA_GRPC", ads.GetApiType())
	}
	var cluster string
	for _, g := range ads.GetGrpcServices() {
		cluster = g.GetEnvoyGrpc().GetClusterName()
	}
	// Kept as given, relative to the working directory as Envoy has them: pilot-agent's are relative to the
	// task directory, and made absolute they can exceed a socket address's 107 bytes (sun_path).
	for name, path := range b.pipes {
		cfg.SDSPaths[name] = path
		if name == cluster {
			cfg.ADSPath = path
		}
	}
	if cfg.ADSPath == "" {
		return xds.Config{}, fmt.Errorf("dynamic_resources.ads_config names cluster %q, which is no static cluster with a pipe endpoint", cluster)
	}
	return cfg, nil
}

// countUpdate keeps the stats Envoy keeps per subscription: pilot-agent's readiness reads update_success and
// update_rejected of CDS and LDS.
func (p *proxy) countUpdate(typeURL, _ string, err error) {
	var prefix string
	switch typeURL {
	case xds.ClusterType:
		prefix = "cluster_manager.cds."
	case xds.ListenerType:
		prefix = "listener_manager.lds."
	default:
		return
	}
	p.stats.counter(prefix + "update_attempt").add(1)
	if err != nil {
		p.stats.counter(prefix + "update_rejected").add(1)
		return
	}
	p.stats.counter(prefix + "update_success").add(1)
	if c := p.xdsClient(); typeURL == xds.ClusterType && c != nil {
		p.stats.gauge("cluster_manager.active_clusters").set(uint64(len(c.Snapshot().Clusters)))
	}
}

func (p *proxy) connected(up bool) {
	v := uint64(0)
	if up {
		v = 1
	}
	p.stats.gauge("control_plane.connected_state").set(v)
}

// initialized runs once the first clusters and listeners are warm.
func (p *proxy) initialized() {
	if err := p.markLive(); err != nil {
		p.stats.counter("listener_manager.listener_create_failure").add(1)
		p.events.event("listener_error", map[string]any{"error": err.Error()})
	}
}

// xdsClient is the running client, nil with no control plane (or before it started).
func (p *proxy) xdsClient() *xds.Client {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.xds
}
