package driver

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"time"

	"github.com/istio-sidecar/istio-sidecar/driver/interception"
	"github.com/istio-sidecar/istio-sidecar/driver/istio"
	"github.com/istio-sidecar/istio-sidecar/driver/proxy"
	"github.com/istio-sidecar/istio-sidecar/driver/rules"
)

const (
	defaultPilotAgentPath    = "/usr/local/bin/pilot-agent"
	defaultEnvoyPath         = "/usr/local/bin/envoy"
	defaultBootstrapTemplate = "/var/lib/istio/envoy/envoy_bootstrap_tmpl.json"
	defaultDiscoveryAddress  = "istiod.istio-system.svc:15012"
	// The name example/control-plane/istiod.nomad.hcl puts on istiod's certificate (ISTIOD_CUSTOM_HOST):
	// sidecars that find istiod through its Nomad service dial an IP address and check this name instead.
	defaultIstiodSAN      = "istiod.service.nomad"
	defaultRootCertSource = "secrets/root-cert.pem"
	defaultTokenSource    = "secrets/istio-token"
)

// DefaultStateDir is the plugin's default state_dir, where the operator CLI finds the namespace locks too.
const DefaultStateDir = "/run/istio-sidecar"

// Config is the client's plugin block, as Nomad decodes it.
type Config struct {
	PilotAgentPath        string `codec:"pilot_agent_path"`
	EnvoyPath             string `codec:"envoy_path"`
	BootstrapTemplatePath string `codec:"bootstrap_template_path"`
	ProxyUID              int    `codec:"proxy_uid"`
	ProxyGID              int    `codec:"proxy_gid"`
	DiscoveryAddress      string `codec:"discovery_address"`
	CAAddress             string `codec:"ca_address"`
	IstiodSAN             string `codec:"istiod_san"`
	TrustDomain           string `codec:"trust_domain"`
	ClusterID             string `codec:"cluster_id"`
	MeshID                string `codec:"mesh_id"`
	Network               string `codec:"network"`
	ProxyConfig           string `codec:"proxy_config"`
	RootCertPath          string `codec:"root_cert_path"`
	ReadinessTimeout      string `codec:"readiness_timeout"`
	// WorkloadCertTTL is SECRET_TTL, the lifetime pilot-agent asks istiod for; empty keeps pilot-agent's 24h.
	// Operator only: istiod refuses one above its MAX_WORKLOAD_CERT_TTL, and a job could make its own
	// sidecars fail or hammer the CA.
	WorkloadCertTTL string `codec:"workload_cert_ttl"`
	NoCgroups       bool   `codec:"no_cgroups"`

	// ExtraProxyUIDs and ExtraProxyGIDs are treated as the proxy's own IDs (Istio's -u and -g lists after the
	// first): their traffic is never captured. Operator only: an ID a job could add would escape the mesh.
	ExtraProxyUIDs []int `codec:"extra_proxy_uids"`
	ExtraProxyGIDs []int `codec:"extra_proxy_gids"`

	Interception            rules.Spec `codec:"interception"`
	HostExcludePorts        []string   `codec:"host_exclude_ports"`
	InterceptionGracePeriod string     `codec:"interception_grace_period"`
	DriftCheckInterval      string     `codec:"drift_check_interval"`
	StateDir                string     `codec:"state_dir"`
	EnvPassthrough          []string   `codec:"env_passthrough"`
}

// settings is a validated Config, with typed values.
type settings struct {
	Config
	readinessTimeout time.Duration
	// proxyConfig is the fleet's ProxyConfig layer, parsed once.
	proxyConfig   proxy.ProxyConfigLayer
	gracePeriod   time.Duration
	driftInterval time.Duration
}

// trackerSettings are what the interception tracker acts on.
func (s *settings) trackerSettings() interception.Settings {
	return interception.Settings{StateDir: s.StateDir, Grace: s.gracePeriod}
}

func defaultConfig() Config {
	return Config{
		PilotAgentPath:          defaultPilotAgentPath,
		EnvoyPath:               defaultEnvoyPath,
		BootstrapTemplatePath:   defaultBootstrapTemplate,
		ProxyUID:                istio.ProxyUID,
		ProxyGID:                istio.ProxyGID,
		DiscoveryAddress:        defaultDiscoveryAddress,
		IstiodSAN:               defaultIstiodSAN,
		TrustDomain:             "cluster.local",
		ClusterID:               "nomad",
		ReadinessTimeout:        "60s",
		HostExcludePorts:        slices.Clone(defaultHostExcludePorts), // decoding writes into it
		InterceptionGracePeriod: "1m",
		DriftCheckInterval:      "30s",
		StateDir:                DefaultStateDir,
		EnvPassthrough:          []string{"ISTIO_META_"}, // a fresh slice: decoding writes into it
	}
}

// validate checks every field and names the first bad one. It touches nothing on the host: Nomad calls
// SetConfig on a throwaway instance too, and whether the binaries exist is the fingerprint's business.
func (c Config) validate() (*settings, error) {
	if err := c.validateProxy(); err != nil {
		return nil, err
	}
	if err := c.validateMesh(); err != nil {
		return nil, err
	}
	if !filepath.IsAbs(c.StateDir) {
		return nil, fmt.Errorf("state_dir: %q must be an absolute path", c.StateDir)
	}
	if err := c.validateInterception(); err != nil {
		return nil, err
	}
	s := &settings{Config: c}
	var err error
	if s.proxyConfig, err = proxy.ParseProxyConfig("proxy_config", proxy.Fleet, c.ProxyConfig, typedProxyConfigFields(true)); err != nil {
		return nil, err
	}
	if s.readinessTimeout, err = positiveDuration("readiness_timeout", c.ReadinessTimeout); err != nil {
		return nil, err
	}
	if c.WorkloadCertTTL != "" {
		if _, err = positiveDuration("workload_cert_ttl", c.WorkloadCertTTL); err != nil {
			return nil, err
		}
	}
	if s.gracePeriod, err = positiveDuration("interception_grace_period", c.InterceptionGracePeriod); err != nil {
		return nil, err
	}
	if s.driftInterval, err = time.ParseDuration(c.DriftCheckInterval); err != nil || s.driftInterval < 0 {
		return nil, fmt.Errorf("drift_check_interval: %q must be a duration, such as 30s (0s turns the check off)", c.DriftCheckInterval)
	}
	return s, nil
}

// validateProxy checks what the proxy runs from and as: its binaries, the root certificate, its user.
func (c Config) validateProxy() error {
	for _, p := range []struct{ field, path string }{
		{"pilot_agent_path", c.PilotAgentPath},
		{"envoy_path", c.EnvoyPath},
		{"bootstrap_template_path", c.BootstrapTemplatePath},
	} {
		if !filepath.IsAbs(p.path) {
			return fmt.Errorf("%s: %q must be an absolute path", p.field, p.path)
		}
	}
	if c.RootCertPath != "" && !filepath.IsAbs(c.RootCertPath) {
		return fmt.Errorf("root_cert_path: %q must be an absolute path on the host", c.RootCertPath)
	}
	if err := checkProxyID("proxy_uid", c.ProxyUID); err != nil {
		return err
	}
	if err := checkProxyID("proxy_gid", c.ProxyGID); err != nil {
		return err
	}
	if err := checkExtraIDs("extra_proxy_uids", c.ExtraProxyUIDs, "proxy_uid", c.ProxyUID); err != nil {
		return err
	}
	return checkExtraIDs("extra_proxy_gids", c.ExtraProxyGIDs, "proxy_gid", c.ProxyGID)
}

// validateMesh checks what the proxy is told: the control plane, the mesh's names and the environment that
// passes through.
func (c Config) validateMesh() error {
	if err := checkHostPort("discovery_address", c.DiscoveryAddress); err != nil {
		return err
	}
	if c.CAAddress != "" {
		if err := checkHostPort("ca_address", c.CAAddress); err != nil {
			return err
		}
	}
	if err := checkIstiodSAN(c.IstiodSAN); err != nil {
		return err
	}
	if err := checkDNSName("trust_domain", c.TrustDomain); err != nil {
		return err
	}
	for _, f := range []struct{ field, v string }{
		{"cluster_id", c.ClusterID}, {"mesh_id", c.MeshID}, {"network", c.Network},
	} {
		if err := checkToken(f.field, f.v); err != nil {
			return err
		}
	}
	for i, p := range c.EnvPassthrough {
		if !envPrefix.MatchString(p) {
			return fmt.Errorf("env_passthrough[%d]: %q must be a variable name prefix (letters, digits, '_')", i, p)
		}
	}
	return nil
}

// validateInterception parses the fleet's interception defaults on their own; the namespace they will meet
// is not known yet, so a placeholder nameserver stands in for the one DNS capture would find, and a
// placeholder GID for each group name, which is looked up where a task starts.
func (c Config) validateInterception() error {
	env := rules.Env{Nameservers: []netip.Addr{netip.MustParseAddr("127.0.0.53")}, GroupIDs: map[string]uint32{}}
	for _, name := range rules.OwnerGroupNames(c.Interception) {
		env.GroupIDs[name] = 65534
	}
	if _, err := rules.Parse(c.Interception, rules.StandardDefaults(), env); err != nil {
		return fmt.Errorf("interception: %w", err)
	}
	if _, err := rules.Parse(rules.Spec{ExcludeOutboundPorts: c.HostExcludePorts}, rules.StandardDefaults(), env); err != nil {
		return fmt.Errorf("host_exclude_ports: %w", err)
	}
	return nil
}

// checkProxyID refuses root: the proxy's own traffic is told apart from the app's by its UID and GID, and Envoy
// must never run as root in REDIRECT mode.
func checkProxyID(field string, id int) error {
	if id <= 0 || id > 65534 {
		return fmt.Errorf("%s: %d must be between 1 and 65534 (the proxy never runs as root)", field, id)
	}
	return nil
}

// maxID is the largest UID or GID: (uid_t)-1 means "no ID" to the kernel, and iptables refuses it.
const maxID = 1<<32 - 2

// checkExtraIDs checks the extra proxy IDs: each an ID other than the proxy's own, listed once. Root is
// allowed (on a VM the operator may want root's traffic out of the mesh, as Istio's -u 0 does): these IDs are
// the operator's to give, and the proxy never runs as any of them.
func checkExtraIDs(field string, ids []int, ownField string, own int) error {
	seen := map[int]bool{own: true}
	for i, id := range ids {
		switch {
		case id < 0 || int64(id) > maxID:
			return fmt.Errorf("%s[%d]: %d must be between 0 and %d", field, i, id, maxID)
		case id == own:
			return fmt.Errorf("%s[%d]: %d is %s already", field, i, id, ownField)
		case seen[id]:
			return fmt.Errorf("%s[%d]: %d is listed twice", field, i, id)
		}
		seen[id] = true
	}
	return nil
}
