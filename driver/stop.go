package driver

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/istio-sidecar/istio-sidecar/driver/proxy"
)

// defaultStopSignal: pilot-agent drains and stops Envoy on SIGTERM (it does not forward the signal).
const defaultStopSignal = "SIGTERM"

// drainRequestTimeout bounds the drain request so that a wedged agent cannot eat the kill timeout.
const drainRequestTimeout = 2 * time.Second

func (d *Driver) WaitTask(ctx context.Context, taskID string) (<-chan *drivers.ExitResult, error) {
	h, ok := d.tasks.Get(taskID)
	if !ok {
		return nil, drivers.ErrTaskNotFound
	}
	ch := make(chan *drivers.ExitResult)
	go func() {
		defer close(ch)
		select {
		case <-ctx.Done():
			return
		case <-d.ctx.Done():
			return
		case <-h.doneCh:
		}
		h.stateLock.RLock()
		result := h.exitResult.Copy()
		h.stateLock.RUnlock()
		select {
		case <-ctx.Done():
		case <-d.ctx.Done():
		case ch <- result:
		}
	}()
	return ch, nil
}

// StopTask drains, signals, and after the timeout kills the whole process group: pilot-agent killed alone
// would leave Envoy running. An unknown task is already stopped: Nomad's gRPC layer cannot carry
// ErrTaskNotFound back to the client, so it would turn a no-op into a failure.
func (d *Driver) StopTask(taskID string, timeout time.Duration, signal string) error {
	h, ok := d.tasks.Get(taskID)
	if !ok {
		return nil
	}
	h.stopping.Store(true)
	if signal == "" {
		signal = defaultStopSignal
	}
	if h.IsRunning() {
		d.emit(h.taskConfig, "Draining: asked the agent to drain, then %s, killing the process group after %s", signal, timeout)
		ctx, cancel := context.WithTimeout(d.ctx, min(drainRequestTimeout, timeout))
		if err := proxy.Drain(ctx, proxy.Client(h.netnsPath, drainRequestTimeout)); err != nil {
			h.logger.Warn("drain request failed; stopping anyway", "error", err)
		}
		cancel()
	}
	if err := h.exec.Shutdown(signal, timeout); err != nil {
		if h.pluginClient.Exited() {
			return nil
		}
		return fmt.Errorf("stopping the proxy: %w", err)
	}
	<-h.doneCh
	h.pluginClient.Kill()
	// A stop Nomad asked for ends the allocation's use of its rules: remove them now rather than after the
	// grace period, so no traffic is captured towards a proxy that is gone.
	if removed, ok := d.releaseNow(h.taskConfig.AllocID); ok {
		d.emit(h.taskConfig, "iptables: %d interception rules removed", removed)
	}
	return nil
}

// DestroyTask is called after every exit, including before a restart, so it ends this task's processes only.
func (d *Driver) DestroyTask(taskID string, force bool) error {
	h, ok := d.tasks.Get(taskID)
	if !ok {
		return nil
	}
	if h.IsRunning() && !force {
		return fmt.Errorf("task %q is still running; stop it first or destroy with force", taskID)
	}
	if !h.pluginClient.Exited() {
		if err := h.exec.Shutdown("SIGKILL", 0); err != nil {
			h.logger.Debug("destroying the executor", "error", err)
		}
		h.pluginClient.Kill()
	}
	d.tasks.Delete(taskID)
	return nil
}
