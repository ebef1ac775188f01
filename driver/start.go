package driver

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/hashicorp/nomad/drivers/shared/executor"
	"github.com/hashicorp/nomad/nomad/structs"
	"github.com/hashicorp/nomad/plugins/drivers"
	pstructs "github.com/hashicorp/nomad/plugins/shared/structs"

	"github.com/istio-sidecar/istio-sidecar/driver/interception"
	"github.com/istio-sidecar/istio-sidecar/driver/istio"
	"github.com/istio-sidecar/istio-sidecar/driver/proxy"
	"github.com/istio-sidecar/istio-sidecar/driver/rules"
	"github.com/istio-sidecar/istio-sidecar/driver/runas"
)

const readinessPollInterval = 200 * time.Millisecond

// StartTask lays out pilot-agent's working tree, starts it under Nomad's executor (so it outlives a plugin
// restart) as the proxy user, and returns only once the proxy is ready: Nomad starts the group's app tasks
// right after a prestart sidecar's StartTask returns, and nothing else waits for Envoy. Each step that fails
// undoes the ones before it.
func (d *Driver) StartTask(cfg *drivers.TaskConfig) (*drivers.TaskHandle, *drivers.DriverNetwork, error) {
	if _, ok := d.tasks.Get(cfg.ID); ok {
		return nil, nil, fmt.Errorf("task %q is already started", cfg.ID)
	}
	p, err := d.planStart(cfg)
	if err != nil {
		return nil, nil, err
	}
	env, err := d.prepare(cfg, p)
	if err != nil {
		return nil, nil, err
	}
	// The rules go in before pilot-agent starts, so the app's first connection is already captured.
	lease, err := d.intercept(cfg, p)
	if err != nil {
		return nil, nil, err
	}
	h, err := d.launch(cfg, p, env)
	if err != nil {
		lease.Undo()
		return nil, nil, err
	}
	h.lease = lease
	handle, err := saveState(cfg, h, p)
	if err != nil {
		d.abort(h)
		lease.Undo()
		return nil, nil, err
	}
	d.track(h)
	d.emit(cfg, "Proxy started: pilot-agent pid %d%s", h.pid, inNetns(h.netnsPath))

	if p.task.HoldApplicationUntilProxyStarts {
		if err := d.waitReady(cfg, h, p.task.readinessTimeout); err != nil {
			h.markStopping() // this exit is ours, not Envoy dying
			d.abort(h)
			d.tasks.Delete(cfg.ID)
			lease.Undo()
			// Recoverable: a slow control plane or a proxy that crashed may well come up on the next attempt.
			return nil, nil, structs.NewRecoverableError(err, true)
		}
	}
	go d.watchDrift(h)
	return handle, nil, nil
}

// startPlan is what StartTask decides before it changes anything, so that a bad field leaves no rule, file or
// process.
type startPlan struct {
	tc           TaskConfig
	task         *taskSettings
	interception interceptionPlan
	inputs       interceptionInputs
	rs           rules.Ruleset
	// vars are the proxy's own environment variables (PROXY_CONFIG among them), decided before anything
	// starts so that one the kernel would refuse fails the start before any change.
	vars map[string]string
}

// planStart checks both config blocks against the placement and reads the namespace the rules depend on.
func (d *Driver) planStart(cfg *drivers.TaskConfig) (*startPlan, error) {
	return planStart(d.settings, cfg, interceptionPlan.inspect)
}

// planStart decides everything a start does from the plugin settings, the task and what inspect reads of the
// namespace; nothing else on the host is read or changed.
func planStart(s *settings, cfg *drivers.TaskConfig, inspect func(interceptionPlan) (interceptionInputs, error)) (*startPlan, error) {
	tc, err := decodeTaskConfig(cfg)
	if err != nil {
		return nil, err
	}
	p := &startPlan{tc: tc}
	if p.task, err = tc.validate(s); err != nil {
		return nil, fmt.Errorf("%s task config: %w", PluginName, err)
	}
	if p.interception, err = planInterception(s, tc, placementOf(cfg)); err != nil {
		return nil, err
	}
	if p.inputs, err = inspect(p.interception); err != nil {
		return nil, err
	}
	if p.rs, err = p.inputs.ruleset(s, cfg.AllocID); err != nil {
		return nil, fmt.Errorf("%s task config: %w", PluginName, err)
	}
	if p.interception.host {
		if err := checkHostModePorts(cfg, istio.OutboundCapturePort, istio.InboundCapturePort); err != nil {
			return nil, err
		}
	}
	if p.vars, err = proxyEnvironment(cfg, s, p.task, p.interception.mode()); err != nil {
		return nil, fmt.Errorf("%s task config: %w", PluginName, err)
	}
	if p.interception.spec.DNSCapture {
		// pilot-agent's DNS proxy on 15053 answers what the rules redirect there.
		p.vars["ISTIO_META_DNS_CAPTURE"] = "true"
	}
	return p, nil
}

// env is pilot-agent's environment: the task's passthrough variables and the proxy's own (proxy.EnvList).
func (p *startPlan) env(cfg *drivers.TaskConfig, s *settings) []string {
	return proxy.EnvList(cfg.Env, s.EnvPassthrough, p.vars)
}

// argv starts pilot-agent as the proxy user through the run-as shim in self, the plugin binary.
func (p *startPlan) argv(self string, s *settings) []string {
	return runas.Argv(self, s.ProxyUID, s.ProxyGID, proxyCaps(p.interception.spec),
		append([]string{s.PilotAgentPath}, proxy.Args(p.tc.LogLevel, s.BootstrapTemplatePath)...))
}

// decodeTaskConfig decodes the jobspec's config block as Nomad encoded it.
func decodeTaskConfig(cfg *drivers.TaskConfig) (TaskConfig, error) {
	var tc TaskConfig
	if err := cfg.DecodeDriverConfig(&tc); err != nil {
		return tc, fmt.Errorf("decoding the %s task config: %w", PluginName, err)
	}
	return tc, nil
}

// intercept takes the host lock in host mode and applies the ruleset, with a task event per family. The
// lease's Undo gives back what this start took if a later step fails.
func (d *Driver) intercept(cfg *drivers.TaskConfig, p *startPlan) (*interception.Lease, error) {
	lease, reports, err := d.allocs.Acquire(d.ctx, cfg.AllocID, p.interception.netns, p.rs)
	if err != nil {
		return nil, structs.NewRecoverableError(err, true)
	}
	for _, r := range reports {
		d.emit(cfg, "%s", r.String())
	}
	return lease, nil
}

// saveState is what a restarted plugin recovers the task from.
func saveState(cfg *drivers.TaskConfig, h *taskHandle, p *startPlan) (*drivers.TaskHandle, error) {
	handle := drivers.NewTaskHandle(taskHandleVersion)
	handle.Config = cfg
	if err := handle.SetDriverState(&TaskState{
		ReattachConfig: pstructs.ReattachConfigFromGoPlugin(h.pluginClient.ReattachConfig()),
		TaskConfig:     cfg,
		Config:         p.tc,
		Interception:   p.inputs,
		NetnsPath:      h.netnsPath,
		Pid:            h.pid,
		StartedAt:      h.startedAt,
	}); err != nil {
		return nil, fmt.Errorf("saving the driver state: %w", err)
	}
	return handle, nil
}

// track makes a launched proxy known to the driver and watches for its exit.
func (d *Driver) track(h *taskHandle) {
	// Any exit may be followed by a restart, so the rules stay for the grace period. A stop Nomad asked for
	// releases them at once in StopTask; this is the safety net if that path fails.
	h.onExit = h.lease.ReleaseLater
	d.tasks.Set(h.taskConfig.ID, h)
	go h.run()
}

// prepare checks the proxy's secrets and lays out its working tree, returning its environment.
func (d *Driver) prepare(cfg *drivers.TaskConfig, p *startPlan) ([]string, error) {
	s, t := d.settings, p.task
	taskDir := cfg.TaskDir().Dir
	rootCert, err := d.rootCert(taskDir, t.RootCertPath)
	if err != nil {
		return nil, err
	}
	layout := proxy.Layout{Dir: taskDir, UID: s.ProxyUID, GID: s.ProxyGID, RootCert: rootCert}
	if t.TokenPath != "" {
		if err := requireToken(taskDir, t.TokenPath); err != nil {
			return nil, err
		}
		if err := proxy.RestrictInTaskDir(taskDir, "token_path", t.TokenPath, s.ProxyUID, s.ProxyGID); err != nil {
			return nil, err
		}
		layout.TokenSource = t.TokenPath
	}
	if err := layout.Prepare(); err != nil {
		return nil, fmt.Errorf("laying out pilot-agent's working tree: %w", err)
	}
	return p.env(cfg, s), nil
}

// rootCert reads the mesh's root certificate: the task's own (typically written by a template into secrets/),
// else the host's, set once per host in the plugin config.
func (d *Driver) rootCert(taskDir, rel string) ([]byte, error) {
	data, err := proxy.ReadInTaskDir(taskDir, "root_cert_path", rel)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return data, err
	}
	if d.settings.RootCertPath == "" {
		return nil, fmt.Errorf("root_cert_path: %q is not in the task directory (write it with a template block), "+
			"and the plugin config sets no root_cert_path", rel)
	}
	data, herr := os.ReadFile(d.settings.RootCertPath)
	if herr != nil {
		return nil, fmt.Errorf("root_cert_path: %q is not in the task directory, and the plugin's root_cert_path: %w", rel, herr)
	}
	return data, nil
}

// launch starts pilot-agent under a new executor.
func (d *Driver) launch(cfg *drivers.TaskConfig, p *startPlan, env []string) (*taskHandle, error) {
	s := d.settings
	logger := d.logger.With("alloc_id", cfg.AllocID, "task", cfg.Name)
	exec, client, err := executor.CreateExecutor(logger, d.nomadConfig, &executor.ExecutorConfig{
		LogFile:  filepath.Join(cfg.TaskDir().Dir, "executor.out"),
		LogLevel: "debug",
	})
	if err != nil {
		return nil, structs.NewRecoverableError(fmt.Errorf("creating the executor: %w", err), true)
	}
	// Started as root through the run-as shim, which drops to the proxy user with no supplementary group;
	// the executor's own User switch would leave root's group on the proxy (Nomad 1.6.3).
	argv := p.argv(d.self, s)
	ps, err := exec.Launch(&executor.ExecCommand{
		Cmd:                argv[0],
		Args:               argv[1:],
		Env:                env,
		TaskDir:            cfg.TaskDir().Dir,
		StdoutPath:         cfg.StdoutPath,
		StderrPath:         cfg.StderrPath,
		NetworkIsolation:   cfg.NetworkIsolation,
		BasicProcessCgroup: !s.NoCgroups && runtime.GOOS == "linux" && os.Geteuid() == 0,
	})
	if err != nil {
		client.Kill()
		return nil, fmt.Errorf("starting pilot-agent (%s): %w", s.PilotAgentPath, err)
	}
	return &taskHandle{
		exec:         exec,
		pluginClient: client,
		logger:       logger,
		taskConfig:   cfg,
		config:       p.tc,
		netnsPath:    p.interception.netns,
		pid:          ps.Pid,
		startedAt:    time.Now().Round(time.Millisecond),
		procState:    drivers.TaskStateRunning,
		exitResult:   &drivers.ExitResult{},
		doneCh:       make(chan struct{}),
		stopCh:       make(chan struct{}),
	}, nil
}

func (d *Driver) waitReady(cfg *drivers.TaskConfig, h *taskHandle, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(d.ctx, timeout)
	defer cancel()
	start := time.Now()
	client := proxy.Client(h.netnsPath, 2*time.Second)
	if err := proxy.WaitReady(ctx, client, readinessPollInterval, h.exitErr); err != nil {
		err = fmt.Errorf("after %s: %w", time.Since(start).Round(time.Millisecond), err)
		if h.exitErr() != nil {
			if line := lastLogLine(cfg); line != "" {
				err = fmt.Errorf("%w; its last log line: %s", err, line)
			}
		}
		return err
	}
	d.emit(cfg, "Proxy ready after %d ms", time.Since(start).Milliseconds())
	return nil
}

// abort kills a proxy that must not go on: the whole process group, so no Envoy is left behind.
func (d *Driver) abort(h *taskHandle) {
	if err := h.exec.Shutdown("SIGKILL", 0); err != nil {
		h.logger.Debug("killing the proxy", "error", err)
	}
	h.pluginClient.Kill()
}

// runAs wraps a command so that it runs as the proxy user (see driver/runas).
func (d *Driver) runAs(cmd []string) []string {
	return runas.Argv(d.self, d.settings.ProxyUID, d.settings.ProxyGID, nil, cmd)
}

func inNetns(path string) string {
	if path == "" {
		return " in the host network namespace"
	}
	return " in network namespace " + path
}
