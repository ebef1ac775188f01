package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/istio-sidecar/istio-sidecar/driver"
	"github.com/istio-sidecar/istio-sidecar/driver/netfilter"
	"github.com/istio-sidecar/istio-sidecar/driver/rules"
)

// operationTimeout bounds one command's iptables work; the driver gives StartTask's apply the same minute.
const operationTimeout = time.Minute

// newFlagSet is a subcommand's flag set: errors and usage go to stderr, and Parse returns instead of exiting.
func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: %s %s %s\n", driver.PluginName, name, synopsis)
		fs.PrintDefaults()
		fmt.Fprintf(fs.Output(), "Run %q for details and exit codes.\n", driver.PluginName+" help")
	}
	return fs
}

// parseFlags parses args; when ok is false the command ends with code (the flag package has said why).
func parseFlags(fs *flag.FlagSet, args []string) (code int, ok bool) {
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return exitOK, false
	case err != nil:
		return exitUsage, false
	case fs.NArg() > 0:
		fmt.Fprintf(fs.Output(), "%s %s: unexpected argument %q\n", driver.PluginName, fs.Name(), fs.Arg(0))
		fs.Usage()
		return exitUsage, false
	}
	return exitOK, true
}

// usageError reports a bad flag value or combination.
func usageError(stderr io.Writer, cmd, format string, args ...any) int {
	fmt.Fprintf(stderr, "%s %s: %s\n", driver.PluginName, cmd, fmt.Sprintf(format, args...))
	return exitUsage
}

// failure reports err and picks its exit code: a config problem is the caller's (2), anything else the
// operation's (1).
func failure(stderr io.Writer, cmd string, err error) int {
	fmt.Fprintf(stderr, "%s %s: %v\n", driver.PluginName, cmd, err)
	var ce *driver.ConfigError
	if errors.As(err, &ce) {
		return exitUsage
	}
	return exitFailed
}

// nsFlag is --netns; checkNetns refuses a path that does not exist before anything runs.
func nsFlag(fs *flag.FlagSet) *string {
	return fs.String("netns", "", "network namespace `PATH` (default: this process's namespace)")
}

func checkNetns(stderr io.Writer, cmd, path string) (int, bool) {
	if path == "" {
		return exitOK, true
	}
	if _, err := os.Stat(path); err != nil {
		return usageError(stderr, cmd, "--netns: %v", err), false
	}
	return exitOK, true
}

func checkAlloc(stderr io.Writer, cmd, id string) (int, bool) {
	if err := (rules.Owner{AllocID: id}).Validate(); err != nil {
		return usageError(stderr, cmd, "--alloc: %v", err), false
	}
	return exitOK, true
}

func where(netns string) string {
	if netns == "" {
		return "this process's (the host's) network namespace"
	}
	return netns
}

// stateDirFlag is --state-dir: the commands that change rules take the namespace's lock there, the same one
// the driver takes, so that the CLI and a running plugin never write into one namespace at once.
func stateDirFlag(fs *flag.FlagSet) *string {
	return fs.String("state-dir", driver.DefaultStateDir, "the plugin's state_dir `DIR`, where the namespace locks live")
}

func namespaces(stateDir string) netfilter.Namespaces {
	return netfilter.Namespaces{LockDir: netfilter.LockDir(stateDir)}
}

// taskFlags are the flags that name a task config and where it runs: rules and apply share them.
type taskFlags struct {
	config, pluginConfig, alloc, netns string
	host                               bool
}

func (t *taskFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&t.config, "config", "", "`FILE` holding the body of a jobspec's config {} block (HCL)")
	fs.StringVar(&t.pluginConfig, "plugin-config", "",
		"`FILE` holding the body of the client's plugin \"istio-sidecar\" { config {} } block (HCL) (default: the plugin's defaults)")
	fs.StringVar(&t.alloc, "alloc", driver.OperatorPlaceholderAllocID, "alloc `ID` the rules are tagged with")
	fs.StringVar(&t.netns, "netns", "", "group network namespace `PATH`, inspected as the driver does")
	fs.BoolVar(&t.host, "host", false, "host network mode: this process's namespace, with the host-safety ports")
}

// ruleset checks the flags, reads the config file and builds the ruleset the driver would.
func (t *taskFlags) ruleset(cmd string, stderr io.Writer) (rules.Ruleset, int) {
	if t.config == "" {
		return rules.Ruleset{}, usageError(stderr, cmd, "--config FILE is required")
	}
	if t.host && t.netns != "" {
		return rules.Ruleset{}, usageError(stderr, cmd, "--host and --netns are exclusive")
	}
	if code, ok := checkNetns(stderr, cmd, t.netns); !ok {
		return rules.Ruleset{}, code
	}
	if code, ok := checkAlloc(stderr, cmd, t.alloc); !ok {
		return rules.Ruleset{}, code
	}
	body, err := os.ReadFile(t.config)
	if err != nil {
		return rules.Ruleset{}, usageError(stderr, cmd, "--config: %v", err)
	}
	opts := driver.OperatorOptions{AllocID: t.alloc, NetnsPath: t.netns, Host: t.host}
	if t.pluginConfig != "" {
		pc, err := os.ReadFile(t.pluginConfig)
		if err != nil {
			return rules.Ruleset{}, usageError(stderr, cmd, "--plugin-config: %v", err)
		}
		opts.PluginConfig = string(pc)
	}
	rs, err := driver.OperatorRuleset(string(body), opts)
	if err != nil {
		file := t.config
		if ce := (*driver.ConfigError)(nil); errors.As(err, &ce) && ce.Plugin {
			file = t.pluginConfig
		}
		return rules.Ruleset{}, failure(stderr, cmd, fmt.Errorf("%s: %w", file, err))
	}
	return rs, exitOK
}

// operationContext ends on the timeout or on SIGINT/SIGTERM. An interruption never leaves half a family:
// netfilter takes back an interrupted restore under a context of its own.
func operationContext() (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(ctx, operationTimeout)
	return ctx, func() { cancel(); stop() }
}
