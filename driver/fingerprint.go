package driver

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/nomad/plugins/drivers"
	pstructs "github.com/hashicorp/nomad/plugins/shared/structs"

	"github.com/istio-sidecar/istio-sidecar/driver/netfilter"
	"github.com/istio-sidecar/istio-sidecar/driver/proxy"
)

const attrPrefix = "driver." + PluginName

// networkModes are the group network modes the driver meshes: host (rules in the host's namespace, one
// meshed group per host) and the group namespaces Nomad creates for bridge and CNI networks (any number).
const networkModes = "host,bridge,cni"

// Fingerprint sends the first fingerprint at once (the client waits for it before registering the node), then
// one every 30 s, and closes the channel when either context ends.
func (d *Driver) Fingerprint(ctx context.Context) (<-chan *drivers.Fingerprint, error) {
	ch := make(chan *drivers.Fingerprint)
	go func() {
		defer close(ch)
		timer := time.NewTimer(0)
		defer timer.Stop()
		versions := &versionCache{}
		for {
			select {
			case <-ctx.Done():
				return
			case <-d.ctx.Done():
				return
			case <-timer.C:
				timer.Reset(fingerprintPeriod)
			}
			fp := buildFingerprint(d.settings, d.probes, versions)
			select {
			case ch <- fp:
			case <-ctx.Done():
				return
			case <-d.ctx.Done():
				return
			}
		}
	}()
	return ch, nil
}

// buildFingerprint is the pure step: host facts in, fingerprint out. Only facts that change with the host's
// software go into attributes; anything that moves as tasks come and go would re-evaluate every job on the node.
func buildFingerprint(s *settings, p probes, versions *versionCache) *drivers.Fingerprint {
	var missing []string
	attrs := map[string]*pstructs.Attribute{
		attrPrefix:              pstructs.NewBoolAttribute(true),
		attrPrefix + ".version": pstructs.NewStringAttribute(Version),
		// What a job can constrain on. Whether a host-mode group already runs here is deliberately absent:
		// occupancy churns node evaluations and races; the static ports and the host lock handle it.
		attrPrefix + ".network_modes": pstructs.NewStringAttribute(networkModes),
	}
	if !p.privileged() {
		missing = append(missing, "the plugin runs neither as root nor with CAP_NET_ADMIN")
	}

	agentVersion, err := versions.get(p, s.PilotAgentPath, func(path string) (string, error) {
		out, err := p.run(path, "version", "-o", "json")
		if err != nil {
			return "", err
		}
		return proxy.ParsePilotAgentVersion(out)
	})
	if err != nil {
		missing = append(missing, fmt.Sprintf("pilot-agent (pilot_agent_path %s): %v", s.PilotAgentPath, err))
	}
	attrs[attrPrefix+".pilot_agent.version"] = pstructs.NewStringAttribute(agentVersion)

	envoyVersion, err := versions.get(p, s.EnvoyPath, func(path string) (string, error) {
		out, err := p.run(path, "--version")
		if err != nil {
			return "", err
		}
		return proxy.ParseEnvoyVersion(out)
	})
	if err != nil {
		missing = append(missing, fmt.Sprintf("envoy (envoy_path %s): %v", s.EnvoyPath, err))
	}
	attrs[attrPrefix+".envoy.version"] = pstructs.NewStringAttribute(envoyVersion)

	if err := p.readable(s.BootstrapTemplatePath); err != nil {
		missing = append(missing, fmt.Sprintf("Envoy bootstrap template (bootstrap_template_path %s): %v", s.BootstrapTemplatePath, err))
	}

	backend, version, err := iptablesFacts(p, versions)
	if err != nil {
		missing = append(missing, err.Error())
	}
	attrs[attrPrefix+".iptables.backend"] = pstructs.NewStringAttribute(backend)
	attrs[attrPrefix+".iptables.version"] = pstructs.NewStringAttribute(version)

	fp := &drivers.Fingerprint{Attributes: attrs, Health: drivers.HealthStateHealthy, HealthDescription: drivers.DriverHealthy}
	if len(missing) > 0 {
		fp.Health = drivers.HealthStateUnhealthy
		fp.HealthDescription = "cannot mesh on this host: " + strings.Join(missing, "; ")
	}
	return fp
}

// iptablesFacts checks the tools the interception needs and reads the default backend from
// `iptables --version` ("iptables v1.8.9 (nf_tables)"; legacy builds print no backend), cached like the
// proxy's versions: switching the alternatives changes the file `iptables` resolves to, and so its stamp.
func iptablesFacts(p probes, versions *versionCache) (backend, version string, err error) {
	var path string
	for _, tool := range []string{"iptables", "iptables-restore", "iptables-save"} {
		found, err := p.lookPath(tool)
		if err != nil {
			return "", "", fmt.Errorf("%s not found in %s (install Debian's iptables package)", tool, netfilter.ToolPath)
		}
		if tool == "iptables" {
			path = found
		}
	}
	out, err := versions.get(p, path, func(path string) (string, error) {
		out, err := p.run(path, "--version")
		return string(out), err
	})
	if err != nil {
		return "", "", fmt.Errorf("iptables --version: %w", err)
	}
	return parseIptablesVersion(out)
}

func parseIptablesVersion(out string) (backend, version string, err error) {
	fields := strings.Fields(out)
	if len(fields) < 2 || fields[0] != "iptables" || !strings.HasPrefix(fields[1], "v") {
		return "", "", fmt.Errorf("iptables --version: unexpected %q", strings.TrimSpace(out))
	}
	version = strings.TrimPrefix(fields[1], "v")
	backend = "legacy"
	if len(fields) > 2 {
		backend = strings.Trim(fields[2], "()")
	}
	return backend, version, nil
}

// versionCache remembers a binary's version until the file changes, so the 30 s fingerprint does not fork
// pilot-agent, Envoy and iptables every time.
type versionCache struct {
	mu      sync.Mutex
	entries map[string]versionEntry
}

type versionEntry struct {
	stamp   string
	version string
}

func (c *versionCache) get(p probes, path string, read func(string) (string, error)) (string, error) {
	stamp, err := p.executable(path)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[path]; ok && e.stamp == stamp {
		return e.version, nil
	}
	v, err := read(path)
	if err != nil {
		return "", err
	}
	if c.entries == nil {
		c.entries = map[string]versionEntry{}
	}
	c.entries[path] = versionEntry{stamp: stamp, version: v}
	return v, nil
}
