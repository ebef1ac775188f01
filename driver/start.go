package driver

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"github.com/hashicorp/nomad/drivers/shared/executor"
	"github.com/hashicorp/nomad/nomad/structs"
	"github.com/hashicorp/nomad/plugins/drivers"
	pstructs "github.com/hashicorp/nomad/plugins/shared/structs"

	"github.com/istio-sidecar/istio-sidecar/driver/netfilter"
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
	var tc TaskConfig
	if err := cfg.DecodeDriverConfig(&tc); err != nil {
		return nil, nil, fmt.Errorf("decoding the %s task config: %w", PluginName, err)
	}
	// Everything is checked before anything is changed: a bad field leaves no rule, file or process.
	t, err := tc.validate(d.settings)
	if err != nil {
		return nil, nil, fmt.Errorf("%s task config: %w", PluginName, err)
	}
	in, err := d.interceptionFor(cfg, tc)
	if err != nil {
		return nil, nil, err
	}
	rs, err := d.ruleset(cfg.AllocID, in)
	if err != nil {
		return nil, nil, fmt.Errorf("%s task config: %w", PluginName, err)
	}
	if isHostMode(cfg) {
		def := rules.StandardDefaults()
		if err := checkHostModePorts(cfg, def.OutboundCapturePort, def.InboundCapturePort); err != nil {
			return nil, nil, err
		}
	}
	env, err := d.prepare(cfg, t, in.Spec)
	if err != nil {
		return nil, nil, err
	}

	// The rules go in before pilot-agent starts, so the app's first connection is already captured.
	undo, err := d.intercept(cfg, rs)
	if err != nil {
		return nil, nil, err
	}
	h, err := d.launch(cfg, tc, env, proxyCaps(in.Spec))
	if err != nil {
		undo()
		return nil, nil, err
	}
	handle := drivers.NewTaskHandle(taskHandleVersion)
	handle.Config = cfg
	if err := handle.SetDriverState(&TaskState{
		ReattachConfig: pstructs.ReattachConfigFromGoPlugin(h.pluginClient.ReattachConfig()),
		TaskConfig:     cfg,
		Config:         tc,
		Interception:   in,
		NetnsPath:      h.netnsPath,
		Pid:            h.pid,
		StartedAt:      h.startedAt,
	}); err != nil {
		d.abort(h)
		undo()
		return nil, nil, fmt.Errorf("saving the driver state: %w", err)
	}
	d.track(h)
	d.emit(cfg, "Proxy started: pilot-agent pid %d%s", h.pid, inNetns(h.netnsPath))

	if t.HoldApplicationUntilProxyStarts {
		if err := d.waitReady(cfg, h, t.readinessTimeout); err != nil {
			h.markStopping() // this exit is ours, not Envoy dying
			d.abort(h)
			d.tasks.Delete(cfg.ID)
			undo()
			// Recoverable: a slow control plane or a proxy that crashed may well come up on the next attempt.
			return nil, nil, structs.NewRecoverableError(err, true)
		}
	}
	go d.watchDrift(h, rs)
	return handle, nil, nil
}

// intercept takes the host lock in host mode and applies the ruleset. The returned undo
// releases what this start took when a later step fails; a restart's rules, which the app relies on while
// the sidecar is down, are kept and released after the grace period instead, unless a retry claims them.
func (d *Driver) intercept(cfg *drivers.TaskConfig, rs rules.Ruleset) (undo func(), err error) {
	netns, host, allocID := netnsOf(cfg), isHostMode(cfg), cfg.AllocID
	unlock := d.allocs.lock(allocID)
	defer unlock()
	ctx, cancel := context.WithTimeout(d.ctx, time.Minute)
	defer cancel()
	// A start that fails gives back what it took: all of it if the allocation had nothing here before, but
	// a restart's rules, which the app relies on while the sidecar is down, only after the grace period.
	held := d.allocs.held(allocID)
	if host {
		if err := d.hostLock().acquire(allocID); err != nil {
			// Recoverable, as every failure below: the xtables lock or another allocation's lock may clear.
			return nil, structs.NewRecoverableError(err, true)
		}
	}
	d.allocs.hold(allocID, netns, host)
	found, err := d.applyRules(ctx, cfg, rs)
	if err != nil {
		// Apply leaves the namespace as it was, or says its undo failed; either way what is there now decides,
		// and only this rare path needs to look. Its own deadline: Apply may have failed on running out of
		// ctx's. A read that fails counts as finding the rules, which keeps them for the grace period.
		rctx, rcancel := context.WithTimeout(d.ctx, 30*time.Second)
		defer rcancel()
		owners, oerr := netfilter.Owners(rctx, netns)
		d.undoIntercept(allocID, oerr == nil && !slices.Contains(owners, allocID) && !held)
		return nil, structs.NewRecoverableError(err, true)
	}
	fresh := !found && !held
	return func() {
		unlock := d.allocs.lock(allocID)
		defer unlock()
		d.undoIntercept(allocID, fresh)
	}, nil
}

// undoIntercept gives back what a failed start took; the caller holds the allocation's lock.
func (d *Driver) undoIntercept(allocID string, fresh bool) {
	if fresh {
		d.releaseNowLocked(allocID)
	} else {
		d.releaseLater(allocID, d.settings.gracePeriod)
	}
}

// track makes a launched proxy known to the driver and watches for its exit.
func (d *Driver) track(h *taskHandle) {
	allocID := h.taskConfig.AllocID
	// Any exit may be followed by a restart, so the rules stay for the grace period. A stop Nomad asked for
	// releases them at once in StopTask; this is the safety net if that path fails.
	h.onExit = func() { d.releaseLater(allocID, d.settings.gracePeriod) }
	d.tasks.Set(h.taskConfig.ID, h)
	go h.run()
}

// prepare checks the proxy's secrets and lays out its working tree, returning its environment.
func (d *Driver) prepare(cfg *drivers.TaskConfig, t *taskSettings, spec rules.Spec) ([]string, error) {
	s := d.settings
	taskDir := cfg.TaskDir().Dir
	rootCert, err := d.rootCert(taskDir, t.RootCertPath)
	if err != nil {
		return nil, err
	}
	layout := proxy.Layout{Dir: taskDir, UID: s.ProxyUID, GID: s.ProxyGID, RootCert: rootCert}
	if t.TokenPath != "" {
		switch err := proxy.RestrictInTaskDir(taskDir, "token_path", t.TokenPath, s.ProxyUID, s.ProxyGID); {
		case err == nil:
			layout.TokenSource = t.TokenPath
		case errors.Is(err, fs.ErrNotExist):
			d.emit(cfg, "No bootstrap token at %s: the proxy cannot get a workload certificate from the CA", t.TokenPath)
		default:
			return nil, err
		}
	}
	if err := layout.Prepare(); err != nil {
		return nil, fmt.Errorf("laying out pilot-agent's working tree: %w", err)
	}
	mode := rules.ModeRedirect
	if isTProxy(spec) {
		mode = rules.ModeTProxy
	}
	vars, err := proxyEnvironment(cfg, s, t, mode)
	if err != nil {
		return nil, err
	}
	if spec.DNSCapture {
		// pilot-agent's DNS proxy on 15053 answers what the rules redirect there.
		vars["ISTIO_META_DNS_CAPTURE"] = "true"
	}
	return proxy.EnvList(cfg.Env, s.EnvPassthrough, vars), nil
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
func (d *Driver) launch(cfg *drivers.TaskConfig, tc TaskConfig, env []string, caps []string) (*taskHandle, error) {
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
	argv := runas.Argv(d.self, s.ProxyUID, s.ProxyGID, caps, append([]string{s.PilotAgentPath}, proxy.Args(tc.LogLevel, s.BootstrapTemplatePath)...))
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
		config:       tc,
		netnsPath:    netnsOf(cfg),
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
