package main

import (
	"fmt"
	"strconv"
	"strings"
)

// options holds the Envoy command-line flags the stand-in acts on. Everything else pilot-agent (or a
// person) passes is accepted and kept in unknown, because a stand-in that rejected a flag added by a newer
// pilot-agent would fail the test for the wrong reason.
type options struct {
	configPath  string
	configYAML  string
	logLevel    string
	concurrency int
	drainTimeS  int
	// mode is Envoy's --mode: "serve" (default), "validate" or "init_only".
	mode    string
	version bool
	help    bool
	// all keeps every flag seen with its value ("" for switches), for /server_info's command_line_options.
	all     map[string]string
	unknown []string
}

// valueFlags are Envoy flags (source/server/options_impl.cc) that take a value. Knowing them matters only
// for parsing: "-l warning" must not leave "warning" behind as a stray positional argument.
var valueFlags = map[string]bool{
	"c": true, "config-path": true, "config-yaml": true, "mode": true, "admin-address-path": true,
	"local-address-ip-version": true, "concurrency": true, "l": true, "log-level": true,
	"component-log-level": true, "log-format": true, "log-path": true, "restart-epoch": true,
	"base-id": true, "base-id-path": true, "service-cluster": true, "service-node": true,
	"service-zone": true, "file-flush-interval-msec": true, "file-flush-min-size-kb": true,
	"drain-time-s": true, "drain-strategy": true, "parent-shutdown-time-s": true,
	"disable-extensions": true, "socket-path": true, "socket-mode": true, "stats-tag": true,
	"bootstrap-version": true,
}

// switchFlags are Envoy flags that take no value.
var switchFlags = map[string]bool{
	"version": true, "h": true, "help": true, "disable-hot-restart": true, "hot-restart-version": true,
	"allow-unknown-static-fields": true, "reject-unknown-dynamic-fields": true,
	"ignore-unknown-dynamic-fields": true, "skip-deprecated-logs": true, "enable-mutex-tracing": true,
	"cpuset-threads": true, "use-dynamic-base-id": true, "log-format-escaped": true,
	"enable-fine-grain-logging": true, "enable-core-dump": true, "skip-hot-restart-on-no-parent": true,
	"skip-hot-restart-parent-stats": true,
}

// parseFlags reads Envoy-style arguments: "-c x", "--config-path x" and "--config-path=x" all work, as
// they do with Envoy's TCLAP parser. An unknown "--flag" takes the next argument as its value only when
// that argument does not itself look like a flag; that guess is the best a parser without the flag's
// definition can do, and it is recorded in unknown so a test can see it.
func parseFlags(args []string) (options, error) {
	o := options{logLevel: "info", drainTimeS: 600, mode: "serve", all: map[string]string{}}
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if arg == "--" {
			o.unknown = append(o.unknown, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(arg, "-") || arg == "-" {
			o.unknown = append(o.unknown, arg)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(arg, "-"), "=")
		known := valueFlags[name] || switchFlags[name]
		takesValue := valueFlags[name] || (!known && !hasValue && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-"))
		if takesValue && !hasValue {
			if i+1 >= len(args) {
				return o, fmt.Errorf("flag %s needs a value", arg)
			}
			i++
			value = args[i]
		}
		if !known {
			o.unknown = append(o.unknown, arg)
		}
		o.all[name] = value
		if err := o.apply(name, value); err != nil {
			return o, err
		}
	}
	return o, nil
}

func (o *options) apply(name, value string) error {
	var err error
	switch name {
	case "c", "config-path":
		o.configPath = value
	case "config-yaml":
		o.configYAML = value
	case "l", "log-level":
		o.logLevel = value
	case "mode":
		o.mode = value
	case "concurrency":
		o.concurrency, err = strconv.Atoi(value)
	case "drain-time-s":
		o.drainTimeS, err = strconv.Atoi(value)
	case "version":
		o.version = true
	case "h", "help":
		o.help = true
	}
	if err != nil {
		return fmt.Errorf("flag --%s=%q: %w", name, value, err)
	}
	return nil
}
