// Command istio-sidecar is the Nomad task driver plugin that runs Istio's sidecar. Run by Nomad (no
// arguments) it serves the plugin; run by an operator it answers subcommands. It also re-executes itself as
// Nomad's shared executor ("istio-sidecar executor <json>"), which the executor package handles in its init.
package main

import (
	"context"
	"fmt"
	"io"
	"os"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/plugins"

	"github.com/istio-sidecar/istio-sidecar/driver"
)

// Exit codes a script can rely on.
const (
	exitOK     = 0
	exitFailed = 1 // the operation failed: iptables, the namespace, the system
	exitUsage  = 2 // bad flag, unreadable file, invalid config field
)

// commands are the operator subcommands, one file each.
var commands = map[string]func(args []string, stdout, stderr io.Writer) int{
	"rules":   cmdRules,
	"apply":   cmdApply,
	"cleanup": cmdCleanup,
	"status":  cmdStatus,
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		plugins.ServeCtx(func(ctx context.Context, logger hclog.Logger) interface{} {
			return driver.New(ctx, logger)
		})
		return exitOK
	}
	if cmd, ok := commands[args[0]]; ok {
		return cmd(args[1:], stdout, stderr)
	}
	switch args[0] {
	case "version", "--version", "-v":
		fmt.Fprintf(stdout, "%s %s\n", driver.PluginName, driver.Version)
		return exitOK
	case "help", "--help", "-h":
		usage(stdout)
		return exitOK
	default:
		fmt.Fprintf(stderr, "%s: unknown command %q\n", driver.PluginName, args[0])
		usage(stderr)
		return exitUsage
	}
}

func usage(w io.Writer) {
	fmt.Fprintf(w, `Usage: %[1]s [command] [flags]

Without a command, %[1]s serves the Nomad task driver plugin (Nomad runs it so from plugin_dir).

Commands:
  rules    --config FILE [--plugin-config FILE] [--alloc ID] [--netns PATH | --host]
           print the iptables-restore payload of each IP family ("# IPv4", "# IPv6" headers) that the
           driver would apply for the task config in FILE; changes nothing
  apply    --config FILE [--plugin-config FILE] (--netns PATH | --host) [--alloc ID]
           apply those rules by hand, one transaction per family, and print a report line per family
  cleanup  [--netns PATH] [--alloc ID]
           remove the rules tagged with ID, or every allocation's rules when --alloc is absent, and print
           "<alloc ID>: N rules removed" per allocation
  status   [--netns PATH]
           print the alloc IDs owning rules, one per line on stdout (nothing when none); the backend, and
           "no interception rules" when there are none, go to stderr
  version  print the plugin version
  help     print this text

Flags:
  --config FILE  the body of a jobspec's config {} block, HCL, same schema and defaults as the driver
                 (an empty file means every default)
  --plugin-config FILE
                 the body of the client's plugin "%[1]s" { config {} } block, HCL, same schema and
                 defaults as the agent's: the proxy's IDs (extra_proxy_uids, ...), the fleet's
                 interception block, host_exclude_ports. Without it, the plugin's defaults (proxy UID/GID
                 1337, no fleet interception block)
  --alloc ID     the allocation whose tag the rules carry; default %[2]s
  --netns PATH   a network namespace file, e.g. /var/run/netns/<alloc ID> for a bridge-mode group; it is
                 inspected (IPv6 address present?) as the driver inspects it. Without it, cleanup and
                 status act on this process's own (the host's) namespace
  --host         the task runs in host network mode: this process's namespace, inspected, with the
                 host-safety ports (SSH, Nomad, Consul, Vault) kept out of capture as the driver does.
                 apply needs --netns or --host, so that it never intercepts the host by omission
  rules with neither --netns nor --host assumes a group namespace with IPv4 only. In every mode, DNS
  capture takes its nameservers from the host's /etc/resolv.conf, as the driver does.
  Owner-group names resolve in this host's group database, as the driver resolves them.
  Rules applied by hand in the host namespace are removed by the plugin's sweep at its next start.

Exit codes:
  0  success
  1  the operation failed (an iptables error, a namespace that cannot be read); message on stderr
  2  usage or config error (bad flag, unreadable file, invalid field: the message names field and value)
`, driver.PluginName, driver.OperatorPlaceholderAllocID)
}
