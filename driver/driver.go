package driver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/consul-template/signals"
	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/drivers/shared/eventer"
	"github.com/hashicorp/nomad/plugins/base"
	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/hashicorp/nomad/plugins/shared/hclspec"

	"github.com/istio-sidecar/istio-sidecar/driver/interception"
)

// Driver runs Istio's pilot-agent (which starts and supervises Envoy) as a Nomad task.
type Driver struct {
	ctx     context.Context
	logger  hclog.Logger
	eventer *eventer.Eventer
	tasks   *taskStore

	settings    *settings
	nomadConfig *base.ClientDriverConfig
	probes      probes

	// allocs holds each allocation's interception across its sidecar's restarts.
	allocs        *interception.Tracker
	reconcileOnce sync.Once
	// self is the plugin binary, re-executed as the run-as shim.
	self string
}

// New returns the driver; Nomad configures it with SetConfig.
func New(ctx context.Context, logger hclog.Logger) *Driver {
	logger = logger.Named(PluginName)
	s, err := defaultConfig().validate()
	if err != nil {
		panic(fmt.Sprintf("the default plugin config is invalid: %v", err))
	}
	self, err := os.Executable()
	if err != nil {
		panic(fmt.Sprintf("locating the plugin binary: %v", err))
	}
	return &Driver{
		self:     self,
		ctx:      ctx,
		logger:   logger,
		eventer:  eventer.NewEventer(ctx, logger),
		tasks:    newTaskStore(),
		settings: s,
		probes:   hostProbes(),
		allocs:   interception.New(logger, nil, s.trackerSettings()),
	}
}

func (d *Driver) PluginInfo() (*base.PluginInfoResponse, error) { return pluginInfo, nil }

func (d *Driver) ConfigSchema() (*hclspec.Spec, error) { return configSpec, nil }

// SetConfig validates the plugin block. It must not touch the host: Nomad also calls it on a throwaway
// instance that it kills straight after.
func (d *Driver) SetConfig(cfg *base.Config) error {
	c, err := decodePluginConfig(cfg.PluginConfig)
	if err != nil {
		return err
	}
	s, err := c.validate()
	if err != nil {
		return fmt.Errorf("%s plugin config: %w", PluginName, err)
	}
	d.configure(s)
	if cfg.AgentConfig != nil {
		// Only the instance Nomad keeps gets the agent config; the throwaway one must not sweep anything.
		d.nomadConfig = cfg.AgentConfig.Driver
		d.reconcileOnce.Do(func() { go d.allocs.Reconcile(d.ctx) })
	}
	return nil
}

// configure puts validated settings in force.
func (d *Driver) configure(s *settings) {
	d.settings = s
	d.allocs.Configure(s.trackerSettings())
}

func (d *Driver) TaskConfigSchema() (*hclspec.Spec, error) { return taskConfigSpec, nil }

func (d *Driver) Capabilities() (*drivers.Capabilities, error) { return capabilities, nil }

func (d *Driver) TaskEvents(ctx context.Context) (<-chan *drivers.TaskEvent, error) {
	return d.eventer.TaskEvents(ctx)
}

// emit sends a task event that `nomad alloc status` shows; it never blocks StartTask on a slow reader.
func (d *Driver) emit(cfg *drivers.TaskConfig, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	d.logger.Info(msg, "alloc_id", cfg.AllocID, "task", cfg.Name)
	if err := d.eventer.EmitEvent(&drivers.TaskEvent{
		TaskID:    cfg.ID,
		TaskName:  cfg.Name,
		AllocID:   cfg.AllocID,
		Timestamp: time.Now(),
		Message:   msg,
	}); err != nil {
		d.logger.Debug("emitting a task event", "error", err)
	}
}

func (d *Driver) InspectTask(taskID string) (*drivers.TaskStatus, error) {
	h, ok := d.tasks.Get(taskID)
	if !ok {
		return nil, drivers.ErrTaskNotFound
	}
	return h.TaskStatus(), nil
}

// TaskStats reports pilot-agent and Envoy together: the executor collects the whole process tree.
func (d *Driver) TaskStats(ctx context.Context, taskID string, interval time.Duration) (<-chan *drivers.TaskResourceUsage, error) {
	h, ok := d.tasks.Get(taskID)
	if !ok {
		return nil, drivers.ErrTaskNotFound
	}
	return h.exec.Stats(ctx, interval)
}

func (d *Driver) SignalTask(taskID string, signal string) error {
	h, ok := d.tasks.Get(taskID)
	if !ok {
		return drivers.ErrTaskNotFound
	}
	sig, ok := signals.SignalLookup[signal]
	if !ok {
		return fmt.Errorf("unknown signal %q", signal)
	}
	return h.exec.Signal(sig)
}

// ExecTask runs a command beside the proxy: as the proxy user (never root: the plugin runs as root and the
// command comes from whoever may `nomad alloc exec`), in the group's network namespace, so that
// `pilot-agent request GET config_dump` reaches the admin port on the loopback the proxy listens on.
func (d *Driver) ExecTask(taskID string, cmd []string, timeout time.Duration) (*drivers.ExecTaskResult, error) {
	if len(cmd) == 0 {
		return nil, errors.New("exec: a command is required")
	}
	h, ok := d.tasks.Get(taskID)
	if !ok {
		return nil, drivers.ErrTaskNotFound
	}
	argv := d.runAs(cmd)
	out, code, err := h.exec.Exec(time.Now().Add(timeout), argv[0], argv[1:])
	if err != nil {
		return nil, err
	}
	return &drivers.ExecTaskResult{Stdout: out, ExitResult: &drivers.ExitResult{ExitCode: code}}, nil
}

var _ drivers.ExecTaskStreamingRawDriver = (*Driver)(nil)

// ExecTaskStreamingRaw serves `nomad alloc exec`.
func (d *Driver) ExecTaskStreamingRaw(ctx context.Context, taskID string, command []string, tty bool,
	stream drivers.ExecTaskStream) error {
	if len(command) == 0 {
		return errors.New("exec: a command is required")
	}
	h, ok := d.tasks.Get(taskID)
	if !ok {
		return drivers.ErrTaskNotFound
	}
	return h.exec.ExecStreaming(ctx, d.runAs(command), tty, stream)
}
