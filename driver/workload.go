package driver

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	meshconfig "istio.io/api/mesh/v1alpha1"

	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/istio-sidecar/istio-sidecar/driver/istio"
	"github.com/istio-sidecar/istio-sidecar/driver/proxy"
	"github.com/istio-sidecar/istio-sidecar/driver/rules"
)

// proxyEnvironment maps the allocation and the two config blocks onto pilot-agent's environment.
func proxyEnvironment(cfg *drivers.TaskConfig, s *settings, t *taskSettings, mode rules.Mode) (map[string]string, error) {
	ca := s.CAAddress
	if t.CAAddress != "" {
		ca = t.CAAddress
	}
	pc, err := proxyConfig(s, t, mode)
	if err != nil {
		return nil, err
	}
	namespace := istio.Namespace(t.Namespace, cfg.Namespace)
	service := t.CanonicalService
	if service == "" {
		service = istio.DNSLabel(cfg.JobName, "workload")
	}
	probers, err := proxy.AppProbersEnv(t.appProbers)
	if err != nil {
		return nil, err
	}
	instance, err := instanceIP(cfg, t)
	if err != nil {
		return nil, err
	}
	env, err := proxy.Environment(proxy.Workload{
		PodName:           podName(cfg),
		Namespace:         namespace,
		ServiceAccount:    istio.ServiceAccount(t.ServiceAccount),
		WorkloadName:      service,
		CanonicalService:  service,
		CanonicalRevision: t.CanonicalRevision,
		Labels:            map[string]string(t.Labels),
		InstanceIP:        instance,
		InterceptionMode:  string(mode),
		AppProbers:        probers,
	}, proxy.Mesh{
		TrustDomain: s.TrustDomain,
		CAAddress:   ca,
		IstiodSAN:   s.IstiodSAN,
		ClusterID:   s.ClusterID,
		MeshID:      s.MeshID,
		Network:     s.Network,
		SecretTTL:   s.WorkloadCertTTL,
	}, proxy.NomadMeta{
		AllocID:    cfg.AllocID,
		JobID:      cfg.JobID,
		Group:      cfg.TaskGroupName,
		Task:       cfg.Name,
		Namespace:  cfg.Namespace,
		Datacenter: cfg.Env["NOMAD_DC"],
		NodeID:     cfg.NodeID,
		NodeName:   cfg.NodeName,
	}, pc)
	if err != nil {
		return nil, err
	}
	if t.ExitOnZeroActiveConnections {
		env["EXIT_ON_ZERO_ACTIVE_CONNECTIONS"] = "true"
	}
	return env, nil
}

// proxyConfig is the PROXY_CONFIG document: the fleet's proxy_config, then the job's, then the typed
// settings, then what the driver owns.
func proxyConfig(s *settings, t *taskSettings, mode rules.Mode) (string, error) {
	pc := proxy.MergeProxyConfig(s.proxyConfig, t.proxyConfig)
	pc.DiscoveryAddress = s.DiscoveryAddress
	if t.DiscoveryAddress != "" {
		pc.DiscoveryAddress = t.DiscoveryAddress
	}
	pc.TerminationDrainDuration = durationpb.New(t.drain)
	if t.Concurrency > 0 {
		pc.Concurrency = wrapperspb.Int32(int32(t.Concurrency))
	}
	pc.InterceptionMode = meshconfig.ProxyConfig_REDIRECT
	if mode == rules.ModeTProxy {
		pc.InterceptionMode = meshconfig.ProxyConfig_TPROXY
	}
	return proxy.RenderProxyConfig(pc, proxy.Owned{
		BinaryPath: s.EnvoyPath,
		// Relative to pilot-agent's working directory, the task dir, as Istio's own default is: the XDS and SDS
		// unix sockets live under it, and an absolute path under a deep task dir overflows the 107-byte limit
		// of a socket address.
		ConfigPath: "./" + proxy.ConfigDir,
		AdminPort:  istio.AdminPort,
		StatusPort: istio.StatusPort,
	})
}

// podName is unique per allocation and a valid DNS label, as Istio expects of a pod name: it names the
// proxy to istiod (sidecar~IP~POD_NAME.NAMESPACE~...).
func podName(cfg *drivers.TaskConfig) string {
	short := cfg.AllocID
	if len(short) > 8 {
		short = short[:8]
	}
	base := istio.DNSLabel(cfg.JobName+"-"+cfg.TaskGroupName, "alloc")
	if len(base) > 63-len(short)-1 {
		base = strings.TrimRight(base[:63-len(short)-1], "-")
	}
	return base + "-" + short
}

// instanceIP is the proxy's own address (INSTANCE_IP, which istiod matches WorkloadEntries against): the
// jobspec's instance_ip, else the address of the group's network namespace (Nomad's, else read from the
// namespace), else the host address of the group's first port (host mode). Empty lets pilot-agent pick from the
// interfaces it sees. A group namespace whose address cannot be read fails the start: the node's address in its
// place would make istiod take every group on the node for this one.
func instanceIP(cfg *drivers.TaskConfig, t *taskSettings) (string, error) {
	if t.InstanceIP != "" {
		return t.InstanceIP, nil
	}
	ni := cfg.NetworkIsolation
	if ni != nil && ni.HostsConfig != nil && ni.HostsConfig.Address != "" {
		return ni.HostsConfig.Address, nil
	}
	if ni != nil && ni.Mode == drivers.NetIsolationModeGroup && ni.Path != "" {
		a, err := namespaceAddress(ni.Path)
		if err != nil {
			return "", fmt.Errorf("the group's address for INSTANCE_IP: %w", err)
		}
		return a.String(), nil
	}
	if r := cfg.Resources; r != nil && r.Ports != nil {
		for _, p := range *r.Ports {
			if p.HostIP != "" {
				return p.HostIP, nil
			}
		}
	}
	return "", nil
}
