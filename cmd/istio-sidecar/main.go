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

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		plugins.ServeCtx(func(ctx context.Context, logger hclog.Logger) interface{} {
			return driver.New(ctx, logger)
		})
		return 0
	}
	switch args[0] {
	case "version", "--version", "-v":
		fmt.Fprintf(stdout, "%s %s\n", driver.PluginName, driver.Version)
		return 0
	case "help", "--help", "-h":
		usage(stdout)
		return 0
	default:
		fmt.Fprintf(stderr, "%s: unknown command %q\n", driver.PluginName, args[0])
		usage(stderr)
		return 2
	}
}

func usage(w io.Writer) {
	fmt.Fprintf(w, `Usage: %[1]s [command]

Without a command, %[1]s serves the Nomad task driver plugin (Nomad runs it so from plugin_dir).

Commands:
  version    print the plugin version
`, driver.PluginName)
}
