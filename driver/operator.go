package driver

import (
	"errors"
	"fmt"

	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/istio-sidecar/istio-sidecar/driver/rules"
)

// OperatorPlaceholderAllocID tags the rules of the operator CLI when it is given no alloc ID: the nil UUID,
// shaped like Nomad's IDs so that a printed payload is byte for byte what an allocation gets but for the ID.
const OperatorPlaceholderAllocID = "00000000-0000-0000-0000-000000000000"

// OperatorOptions say which task the operator CLI builds a ruleset for.
type OperatorOptions struct {
	// AllocID goes into every rule's tag.
	AllocID string
	// NetnsPath is the group network namespace the task would run in; it is inspected (IPv6 presence) as
	// StartTask inspects it.
	NetnsPath string
	// Host is host network mode: the namespace is this process's own (inspected), and the host-safety ports
	// are kept out of capture. Exclusive with NetnsPath.
	Host bool
	// PluginConfig is the body of the client's plugin "istio-sidecar" { config { ... } } block, decoded and
	// validated as SetConfig does; empty means the plugin's defaults.
	PluginConfig string
}

// ConfigError is a problem with the task config or the options, not with the system: a bad HCL body, a
// field the driver refuses (the message names it and its value) or an unusable alloc ID.
type ConfigError struct {
	Err error
	// Plugin is set when the plugin config is at fault rather than the task config.
	Plugin bool
}

func (e *ConfigError) Error() string { return e.Err.Error() }

func (e *ConfigError) Unwrap() error { return e.Err }

// OperatorRuleset builds the ruleset StartTask would apply for a task whose config {} block has the given
// body, with the plugin settings of opts.PluginConfig. It runs the driver's own steps (schema and defaults,
// decoding, validation, the interception plan and inputs, the ruleset), so the CLI and the driver cannot
// disagree.
//
// With neither NetnsPath nor Host, nothing is inspected: the task is taken to run in a group namespace with
// IPv4 only, and /etc/resolv.conf is read only when DNS capture is on.
func OperatorRuleset(body string, opts OperatorOptions) (rules.Ruleset, error) {
	if opts.Host && opts.NetnsPath != "" {
		return rules.Ruleset{}, &ConfigError{Err: errors.New("host network mode and a namespace path are exclusive")}
	}
	if err := (rules.Owner{AllocID: opts.AllocID}).Validate(); err != nil {
		return rules.Ruleset{}, &ConfigError{Err: err}
	}
	pc, err := pluginConfigHCL(opts.PluginConfig)
	if err != nil {
		return rules.Ruleset{}, &ConfigError{Err: err, Plugin: true}
	}
	s, err := pc.validate()
	if err != nil {
		return rules.Ruleset{}, &ConfigError{Err: fmt.Errorf("plugin config: %w", err), Plugin: true}
	}
	cfg := &drivers.TaskConfig{AllocID: opts.AllocID}
	if err := EncodeTaskConfigHCL(body, cfg); err != nil {
		return rules.Ruleset{}, &ConfigError{Err: err}
	}
	tc, err := decodeTaskConfig(cfg)
	if err != nil {
		return rules.Ruleset{}, &ConfigError{Err: err}
	}
	if _, err := tc.validate(s); err != nil {
		return rules.Ruleset{}, &ConfigError{Err: err}
	}
	plan, err := planInterception(s, tc, placement{netns: opts.NetnsPath, host: opts.Host})
	if err != nil {
		return rules.Ruleset{}, &ConfigError{Err: err}
	}
	in, err := plan.inspect()
	if err != nil {
		return rules.Ruleset{}, err
	}
	rs, err := in.ruleset(s, opts.AllocID)
	if err != nil {
		return rules.Ruleset{}, &ConfigError{Err: err}
	}
	return rs, nil
}
