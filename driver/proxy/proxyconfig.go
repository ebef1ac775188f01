package proxy

import (
	"fmt"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// ownedKeys are the ProxyConfig fields the driver decides. A jobspec may not set them: binaryPath would let a job
// author run any host binary as the proxy user, and the ports and paths are what the driver's own probes,
// layout and interception rely on.
var ownedKeys = map[string]bool{
	"binaryPath":                 true,
	"configPath":                 true,
	"proxyAdminPort":             true,
	"statusPort":                 true,
	"proxyBootstrapTemplatePath": true,
	"customConfigFile":           true,
}

// ProxyConfigLayers are the ProxyConfig sources, lowest precedence first, as Istio layers them: mesh-wide
// defaults (the plugin's proxy_config, like MeshConfig.defaultConfig), the workload's override (the task's
// proxy_config, like the proxy.istio.io/config annotation), then the typed settings and the driver's own.
type ProxyConfigLayers struct {
	Fleet    string         // plugin config proxy_config (YAML)
	Workload string         // task config proxy_config (YAML)
	Typed    map[string]any // from typed task/plugin fields (discoveryAddress, concurrency, ...)
	Owned    map[string]any // driver-owned fields (binaryPath, configPath, ports)
}

// ParseProxyConfigYAML checks a user's ProxyConfig YAML: a mapping whose keys the driver does not own.
// field names the config key the YAML came from, for the error.
func ParseProxyConfigYAML(field, doc string) (map[string]any, error) {
	out := map[string]any{}
	if strings.TrimSpace(doc) == "" {
		return out, nil
	}
	if err := yaml.Unmarshal([]byte(doc), &out); err != nil {
		return nil, fmt.Errorf("%s: not a YAML mapping of ProxyConfig fields: %w", field, err)
	}
	for _, k := range sortedKeys(out) {
		if ownedKeys[k] {
			return nil, fmt.Errorf("%s: %q is set by the driver and cannot be overridden", field, k)
		}
	}
	return out, nil
}

// Merge returns the PROXY_CONFIG document. Like pilot-agent's own merge, a later layer replaces a top-level
// field whole (lists and maps are not merged). A typed field set twice, once typed and once in the same layer's
// YAML, is the caller's conflict to report; here the typed value simply wins.
func (l ProxyConfigLayers) Merge() (string, error) {
	merged := map[string]any{}
	for _, layer := range []struct {
		field, doc string
	}{{"plugin proxy_config", l.Fleet}, {"proxy_config", l.Workload}} {
		m, err := ParseProxyConfigYAML(layer.field, layer.doc)
		if err != nil {
			return "", err
		}
		for k, v := range m {
			merged[k] = v
		}
	}
	for k, v := range l.Typed {
		merged[k] = v
	}
	for k, v := range l.Owned {
		merged[k] = v
	}
	out, err := yaml.Marshal(merged)
	if err != nil {
		return "", fmt.Errorf("encoding PROXY_CONFIG: %w", err)
	}
	return string(out), nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
