package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// PluginName is the driver's name everywhere Nomad needs it: the client's plugin block label, the executable's
// file name in plugin_dir and the name jobs use in `driver = "..."`.
const PluginName = "istio-sidecar"

// cniPath holds Debian's containernetworking-plugins, which bridge networking needs.
const cniPath = "/usr/lib/cni"

// Options configure an agent. The zero value starts an agent with only Nomad's built-in drivers.
type Options struct {
	// NomadBin is the agent binary; "" means NomadBin(t) (NOMAD_BIN or build/nomad.sh).
	NomadBin string
	// PluginBin is the istio-sidecar plugin to load, copied into plugin_dir; "" loads no plugin.
	PluginBin string
	// PluginConfig becomes `plugin "istio-sidecar" { config { ... } }`, keys sorted. Values may be string, bool,
	// int or []string. Point pilot_agent_path at a missing file to test an unhealthy driver.
	PluginConfig map[string]any
	// ClientHCL is added verbatim inside the client block, for scenarios that need more client settings.
	ClientHCL string
	// LogLevel is the agent's log level; "" means DEBUG, which is what one wants in a failed test's log.
	LogLevel string

	// Name names the agent's node ("<Name>-<n>"), temporary directory (/tmp/is<Name>-<n>) and cgroup parent
	// (/istio-sidecar-<Name>-<n>); "" means "e2e".
	Name string
	// Ports are the agent's listeners on 127.0.0.1; the zero value means three ports chosen free at start.
	Ports Ports
	// OwnSession runs the agent in a session of its own, so that a Ctrl-C in the terminal reaches only the caller,
	// which then stops the jobs before the agent (an agent stopped first leaves its tasks running).
	OwnSession bool
	// CheckHostRules snapshots the host namespace's netfilter rules at start and, at cleanup, fails on interception
	// rules (removing them) or rules naming the agent's allocations left there, and logs any other change. Only for
	// a caller that owns the host: parallel host-mode scenarios put tagged rules there on purpose.
	CheckHostRules bool
	// FailureLogLines is how much of the end of the agent's log a failure shows; 0 means 2000 lines.
	FailureLogLines int
	// ACL turns Nomad's ACLs on; Start bootstraps them and the agent's Client carries the management token
	// (Agent.ManagementToken).
	ACL bool
	// ExtraHCL is added verbatim at the top level of the agent's config (host volumes go in ClientHCL).
	ExtraHCL string

	// Role makes the agent a server only or a client only; the zero value is both in one process. StartCluster
	// sets it, with the three fields below, for a server and clients each in a network namespace of its own.
	Role Role
	// NetnsPath is the network namespace the agent runs in (nsenter --net), "" for the caller's. The agent keeps
	// the caller's mounts, so its allocations' namespaces and directories are where the harness looks for them.
	NetnsPath string
	// BindAddr is the address the agent listens on and advertises; "" means 127.0.0.1.
	BindAddr string
	// Interface is the client's network_interface (the one whose address its node and services get), "" for
	// Nomad's choice.
	Interface string
	// Servers are the RPC addresses (HOST:PORT) a client-only agent joins.
	Servers []string
	// Token is the ACL token a client-only agent's API client carries: its servers' management token.
	Token string
}

// Role is what an agent runs: a server and a client in one process, or one of them.
type Role int

const (
	RoleServerAndClient Role = iota
	RoleServer
	RoleClient
)

func (r Role) server() bool { return r != RoleClient }
func (r Role) client() bool { return r != RoleServer }

// bindAddr is where the agent listens and what it advertises.
func (o Options) bindAddr() string {
	if o.BindAddr == "" {
		return "127.0.0.1"
	}
	return o.BindAddr
}

// agentConfig renders the agent's configuration file. It is a dev-like single node (server and client in one
// process) but not `-dev`: dev mode keeps state in memory and destroys allocations on shutdown, which would make a
// restart-and-recover scenario impossible and hide leftovers.
func (a *Agent) agentConfig() (string, error) {
	var b strings.Builder
	addr := a.opts.bindAddr()
	fmt.Fprintf(&b, "name = %q\n", a.Name)
	fmt.Fprintf(&b, "data_dir = %q\n", a.DataDir)
	fmt.Fprintf(&b, "plugin_dir = %q\n", a.PluginDir)
	fmt.Fprintf(&b, "bind_addr = %q\n", addr)
	fmt.Fprintf(&b, "log_level = %q\n", a.opts.LogLevel)
	b.WriteString("disable_update_check = true\n")
	fmt.Fprintf(&b, "ports {\n  http = %d\n  rpc = %d\n  serf = %d\n}\n", a.ports.HTTP, a.ports.RPC, a.ports.Serf)
	fmt.Fprintf(&b, "advertise {\n  http = %q\n  rpc = %q\n  serf = %q\n}\n", addr, addr, addr)
	if a.opts.Role.server() {
		b.WriteString("server {\n  enabled = true\n  bootstrap_expect = 1\n}\n")
	}
	if a.opts.Role.client() {
		a.clientConfig(&b, addr)
	}
	// No Consul runs in the test: keep the agent from advertising to or joining through one.
	b.WriteString("consul {\n  auto_advertise = false\n  server_auto_join = false\n  client_auto_join = false\n}\n")
	if a.opts.ACL {
		b.WriteString(aclHCL)
	}
	b.WriteString(a.opts.ExtraHCL)
	if !a.opts.Role.client() {
		return b.String(), nil
	}
	b.WriteString("plugin \"raw_exec\" {\n  config {\n    enabled = true\n  }\n}\n")
	if a.opts.PluginBin != "" {
		body, err := hclBody(a.opts.PluginConfig)
		if err != nil {
			return "", fmt.Errorf("plugin %q config: %w", PluginName, err)
		}
		fmt.Fprintf(&b, "plugin %q {\n  config {\n", PluginName)
		b.WriteString(indent(body, "    "))
		b.WriteString("  }\n}\n")
	}
	return b.String(), nil
}

// clientConfig renders the client block: its servers (its own process's RPC port unless it is a client only).
func (a *Agent) clientConfig(b *strings.Builder, addr string) {
	servers := a.opts.Servers
	if a.opts.Role.server() {
		servers = []string{fmt.Sprintf("%s:%d", addr, a.ports.RPC)}
	}
	b.WriteString("client {\n  enabled = true\n")
	fmt.Fprintf(b, "  servers = %s\n", mustHCL(servers))
	fmt.Fprintf(b, "  cni_path = %q\n", cniPath)
	if a.opts.Interface != "" {
		fmt.Fprintf(b, "  network_interface = %q\n", a.opts.Interface)
	}
	// A cgroup parent of its own keeps this agent's cpuset partitioning (cgroups v1) and task cgroups apart from any
	// other agent on the host; the harness removes it after shutdown.
	fmt.Fprintf(b, "  cgroup_parent = %q\n", a.CgroupParent)
	if a.opts.ClientHCL != "" {
		b.WriteString(indent(a.opts.ClientHCL, "  "))
	}
	b.WriteString("}\n")
}

// mustHCL renders a value hclValue knows by its type.
func mustHCL(v any) string {
	s, err := hclValue(v)
	if err != nil {
		panic(err)
	}
	return s
}

// hclBody renders attributes in sorted order so that the config file is stable and diffable.
func hclBody(attrs map[string]any) (string, error) {
	keys := make([]string, 0, len(attrs))
	for k := range attrs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		v, err := hclValue(attrs[k])
		if err != nil {
			return "", fmt.Errorf("key %s: %w", k, err)
		}
		fmt.Fprintf(&b, "%s = %s\n", k, v)
	}
	return b.String(), nil
}

func hclValue(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return strconv.Quote(v), nil
	case bool:
		return strconv.FormatBool(v), nil
	case int:
		return strconv.Itoa(v), nil
	case []string:
		quoted := make([]string, len(v))
		for i, s := range v {
			quoted[i] = strconv.Quote(s)
		}
		return "[" + strings.Join(quoted, ", ") + "]", nil
	case map[string]string: // a jobspec's map(string) variable
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = strconv.Quote(k) + " = " + strconv.Quote(v[k])
		}
		return "{" + strings.Join(parts, ", ") + "}", nil
	default:
		return "", fmt.Errorf("unsupported value %v of type %T (want string, bool, int, []string or map[string]string)", v, v)
	}
}

func indent(s, prefix string) string {
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		if line != "" {
			b.WriteString(prefix)
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}

// installPlugin copies the plugin into plugin_dir under the name Nomad requires. A copy rather than a symlink gives
// the plugin process an executable path unique to this agent (/proc/<pid>/exe resolves symlinks), which is how
// KillPlugin and the leftover check tell this agent's plugin from another agent's.
func installPlugin(src, pluginDir string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("reading plugin: %w", err)
	}
	if err := os.WriteFile(filepath.Join(pluginDir, PluginName), data, 0o755); err != nil {
		return fmt.Errorf("installing plugin: %w", err)
	}
	return nil
}
