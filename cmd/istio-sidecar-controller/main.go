// Command istio-sidecar-controller is the mesh's side of Nomad: `bootstrap`, run once (or again) by an operator,
// creates the control plane's keys, certificates, credentials and API-server objects; `run`, the Nomad job,
// gives every meshed group its identity.
package main

import (
	"fmt"
	"io"
	"os"
)

// Exit codes a script can rely on.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

var commands = map[string]func(args []string, stdout, stderr io.Writer) int{
	"bootstrap": cmdBootstrap,
	"run":       cmdRun,
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || commands[args[0]] == nil {
		fmt.Fprintln(stderr, "usage: istio-sidecar-controller bootstrap|run [flags]")
		return exitUsage
	}
	return commands[args[0]](args[1:], stdout, stderr)
}
