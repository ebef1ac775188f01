package driver

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/istio-sidecar/istio-sidecar/driver/proxy"
)

const (
	// defaultStopSignal: pilot-agent drains and stops Envoy on SIGTERM (it does not forward the signal).
	defaultStopSignal = "SIGTERM"
	// drainRequestTimeout bounds the drain request so that a wedged agent cannot eat the kill timeout.
	drainRequestTimeout = 2 * time.Second
	// signalGrace is the part of the kill timeout kept for the signal after draining, for pilot-agent to stop
	// Envoy and exit before the process group is killed.
	signalGrace = time.Second
)

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
// would leave Envoy running. Whatever path it takes, it ends by removing the allocation's rules and host
// lock: Nomad stops a sidecar after the group's app tasks, and does not call StopTask twice.
//
// An unknown task is already stopped: Nomad's gRPC layer cannot carry ErrTaskNotFound back to the client, so
// it would turn a no-op into a failure.
func (d *Driver) StopTask(taskID string, timeout time.Duration, signal string) error {
	h, ok := d.tasks.Get(taskID)
	if !ok {
		return nil
	}
	h.markStopping()
	defer func() {
		if removed, ok := h.lease.ReleaseNow(); ok {
			d.emit(h.taskConfig, "iptables: %d interception rules removed", removed)
		}
	}()
	if signal == "" {
		signal = defaultStopSignal
	}
	if h.IsRunning() {
		timeout -= d.drain(h, signal, timeout)
	}
	if h.pluginClient.Exited() {
		killOrphanGroup(h.pid, h.taskConfig.TaskDir().Dir)
		return nil
	}
	if err := h.exec.Shutdown(signal, max(timeout, signalGrace)); err != nil {
		if h.pluginClient.Exited() {
			return nil
		}
		return fmt.Errorf("stopping the proxy: %w", err)
	}
	<-h.doneCh
	h.pluginClient.Kill()
	return nil
}

// drain lets in-flight requests finish before the signal, within the kill timeout, and returns the time it
// used. By default it asks the agent to drain Envoy's listeners now (POST :15020/drain) and holds for
// drain_duration; the signal that follows then stops pilot-agent at once (a drained agent skips its own
// drain). With exit_on_zero_active_connections the signal alone does it: pilot-agent drains and waits for
// the connections to reach zero itself.
func (d *Driver) drain(h *taskHandle, signal string, timeout time.Duration) time.Duration {
	if h.config.ExitOnZeroActiveConnections {
		d.emit(h.taskConfig, "Draining: %s, pilot-agent drains until no connection is left, killing the process group after %s", signal, timeout)
		return 0
	}
	start := time.Now()
	hold, err := time.ParseDuration(h.config.DrainDuration)
	if err != nil {
		hold = 5 * time.Second
	}
	hold = max(min(hold, timeout-signalGrace), 0)
	d.emit(h.taskConfig, "Draining: listeners drained for %s, then %s, killing the process group %s after that", hold, signal, max(timeout-hold, signalGrace))
	ctx, cancel := context.WithTimeout(d.ctx, min(drainRequestTimeout, max(hold, 100*time.Millisecond)))
	err = proxy.Drain(ctx, proxy.Client(h.netnsPath, drainRequestTimeout))
	cancel()
	if err != nil {
		h.logger.Warn("drain request failed; stopping without it", "error", err)
		return time.Since(start)
	}
	timer := time.NewTimer(max(hold-time.Since(start), 0))
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-h.doneCh:
	case <-d.ctx.Done():
	}
	return time.Since(start)
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
	if h.pluginClient.Exited() {
		killOrphanGroup(h.pid, h.taskConfig.TaskDir().Dir)
	} else {
		d.abort(h)
	}
	d.tasks.Delete(taskID)
	return nil
}
