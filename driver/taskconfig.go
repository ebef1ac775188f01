package driver

import (
	"fmt"
	"net"
	"slices"
	"sort"
	"time"

	"github.com/hashicorp/nomad/helper/pluginutils/hclutils"

	"github.com/istio-sidecar/istio-sidecar/driver/proxy"
	"github.com/istio-sidecar/istio-sidecar/driver/rules"
)

// TaskConfig is the jobspec's config block, as Nomad decodes it. It is also persisted in the driver state,
// because a recovered drivers.TaskConfig no longer carries the raw block (decoding it returns EOF in 1.6.3).
type TaskConfig struct {
	Namespace                       string             `codec:"namespace"`
	ServiceAccount                  string             `codec:"service_account"`
	CanonicalService                string             `codec:"canonical_service"`
	CanonicalRevision               string             `codec:"canonical_revision"`
	Labels                          hclutils.MapStrStr `codec:"labels"`
	InstanceIP                      string             `codec:"instance_ip"`
	DiscoveryAddress                string             `codec:"discovery_address"`
	CAAddress                       string             `codec:"ca_address"`
	ProxyConfig                     string             `codec:"proxy_config"`
	RootCertPath                    string             `codec:"root_cert_path"`
	TokenPath                       string             `codec:"token_path"`
	LogLevel                        string             `codec:"log_level"`
	Concurrency                     int                `codec:"concurrency"`
	DrainDuration                   string             `codec:"drain_duration"`
	ExitOnZeroActiveConnections     bool               `codec:"exit_on_zero_active_connections"`
	HoldApplicationUntilProxyStarts bool               `codec:"hold_application_until_proxy_starts"`
	ReadinessTimeout                string             `codec:"readiness_timeout"`
	AppProbers                      []AppProberConfig  `codec:"app_prober"`

	// The interception keys, at the top level of the block as Istio's annotations are on a pod.
	rules.Spec
}

// taskSettings is a validated TaskConfig with the plugin's defaults filled in.
type taskSettings struct {
	TaskConfig
	drain            time.Duration
	readinessTimeout time.Duration
	proxyConfig      proxy.ProxyConfigLayer
	appProbers       []proxy.AppProber
}

// validate checks the block against the plugin's settings and names the first bad field and value.
func (c TaskConfig) validate(s *settings) (*taskSettings, error) {
	if c.Namespace != "" {
		if err := checkLabel1123("namespace", c.Namespace); err != nil {
			return nil, err
		}
	}
	if err := checkLabel1123("service_account", c.ServiceAccount); err != nil {
		return nil, err
	}
	if c.CanonicalService != "" {
		if err := checkLabelValue("canonical_service", c.CanonicalService); err != nil {
			return nil, err
		}
	}
	if err := checkLabelValue("canonical_revision", c.CanonicalRevision); err != nil {
		return nil, err
	}
	if err := checkLabels(c.Labels); err != nil {
		return nil, err
	}
	if c.InstanceIP != "" && net.ParseIP(c.InstanceIP) == nil {
		return nil, fmt.Errorf("instance_ip: %q is not an IP address", c.InstanceIP)
	}
	for _, f := range []struct{ field, v string }{{"discovery_address", c.DiscoveryAddress}, {"ca_address", c.CAAddress}} {
		if f.v == "" {
			continue
		}
		if err := checkHostPort(f.field, f.v); err != nil {
			return nil, err
		}
	}
	if !slices.Contains(proxy.EnvoyLogLevels, c.LogLevel) {
		return nil, fmt.Errorf("log_level: %q must be one of %v", c.LogLevel, proxy.EnvoyLogLevels)
	}
	if c.Concurrency < 0 || c.Concurrency > 1024 {
		return nil, fmt.Errorf("concurrency: %d must be between 0 (Istio's default) and 1024", c.Concurrency)
	}
	t := &taskSettings{TaskConfig: c}
	var err error
	if t.drain, err = positiveDuration("drain_duration", c.DrainDuration); err != nil {
		return nil, err
	}
	t.readinessTimeout = s.readinessTimeout
	if c.ReadinessTimeout != "" {
		if t.readinessTimeout, err = positiveDuration("readiness_timeout", c.ReadinessTimeout); err != nil {
			return nil, err
		}
	}
	if t.appProbers, err = validateAppProbers(c.AppProbers); err != nil {
		return nil, err
	}
	if t.proxyConfig, err = proxy.ParseProxyConfig("proxy_config", proxy.Job, c.ProxyConfig, typedProxyConfigFields(false)); err != nil {
		return nil, err
	}
	return t, nil
}

// typedProxyConfig are the ProxyConfig fields a typed setting decides, by canonical name, and that setting as
// a job and as the fleet see it. In a job's proxy_config such a field would be ambiguous; in the fleet's it
// would be silently overridden, except concurrency, which reaches Envoy when a job leaves its own at 0.
var typedProxyConfig = []struct{ field, job, fleet string }{
	{"discovery_address", "the discovery_address field", "the plugin's discovery_address"},
	{"concurrency", "the concurrency field", ""},
	{"termination_drain_duration", "the drain_duration field", "each job's drain_duration"},
	{"interception_mode", "the interception_mode field", "the interception block's interception_mode"},
	{"hold_application_until_proxy_starts", "the hold_application_until_proxy_starts field", "each job's hold_application_until_proxy_starts"},
}

// typedProxyConfigFields is typedProxyConfig for a job's proxy_config or, with fleet, the plugin's: the setting
// to name in the error, "" where the field is the layer's to set.
func typedProxyConfigFields(fleet bool) map[string]string {
	out := make(map[string]string, len(typedProxyConfig))
	for _, f := range typedProxyConfig {
		out[f.field] = f.job
		if fleet {
			out[f.field] = f.fleet
		}
	}
	return out
}

func checkLabels(labels map[string]string) error {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if len(k) > 316 || !labelKey.MatchString(k) {
			return fmt.Errorf("labels: key %q is not a valid label key", k)
		}
		if err := checkLabelValue(fmt.Sprintf("labels[%q]", k), labels[k]); err != nil {
			return err
		}
	}
	return nil
}
