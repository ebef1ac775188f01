package driver

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
	"github.com/hashicorp/nomad/drivers/shared/executor"
	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/istio-sidecar/istio-sidecar/driver/interception"
)

// errEnvoyExited is the exit result when pilot-agent ends on its own with status 0: it does that when Envoy
// died under it, which for Nomad must read as a failure so that the restart policy applies.
var errEnvoyExited = errors.New("envoy exited unexpectedly: pilot-agent ended with status 0 without being asked to stop")

// taskHandle is one running pilot-agent under its executor.
type taskHandle struct {
	exec         executor.Executor
	pluginClient *plugin.Client
	logger       hclog.Logger

	taskConfig *drivers.TaskConfig
	config     TaskConfig
	netnsPath  string
	pid        int
	startedAt  time.Time

	// stopCh closes when StopTask begins, so that the exit that follows is not mistaken for Envoy dying, and
	// so that the drift watcher ends.
	stopOnce sync.Once
	stopCh   chan struct{}
	// lease is this start's (or recovery's) claim on the allocation's interception.
	lease *interception.Lease
	// onExit runs once the proxy has exited and its state is recorded.
	onExit func()

	stateLock   sync.RWMutex
	procState   drivers.TaskState
	completedAt time.Time
	exitResult  *drivers.ExitResult
	doneCh      chan struct{}
}

func (h *taskHandle) TaskStatus() *drivers.TaskStatus {
	h.stateLock.RLock()
	defer h.stateLock.RUnlock()
	attrs := map[string]string{"pid": strconv.Itoa(h.pid)}
	if h.netnsPath != "" {
		attrs["netns"] = h.netnsPath
	}
	return &drivers.TaskStatus{
		ID:               h.taskConfig.ID,
		Name:             h.taskConfig.Name,
		State:            h.procState,
		StartedAt:        h.startedAt,
		CompletedAt:      h.completedAt,
		ExitResult:       h.exitResult.Copy(),
		DriverAttributes: attrs,
	}
}

// markStopping records that the driver itself is ending this proxy.
func (h *taskHandle) markStopping() {
	h.stopOnce.Do(func() { close(h.stopCh) })
}

// stopping reports whether the driver itself is ending this proxy.
func (h *taskHandle) stopping() bool {
	select {
	case <-h.stopCh:
		return true
	default:
		return false
	}
}

func (h *taskHandle) IsRunning() bool {
	h.stateLock.RLock()
	defer h.stateLock.RUnlock()
	return h.procState == drivers.TaskStateRunning
}

// exitErr reports the exit once it happened, for the readiness wait.
func (h *taskHandle) exitErr() error {
	select {
	case <-h.doneCh:
		h.stateLock.RLock()
		defer h.stateLock.RUnlock()
		if h.exitResult.Err != nil {
			return h.exitResult.Err
		}
		return errors.New("pilot-agent exited with code " + strconv.Itoa(h.exitResult.ExitCode))
	default:
		return nil
	}
}

func (h *taskHandle) run() {
	defer func() {
		close(h.doneCh)
		if h.onExit != nil {
			h.onExit()
		}
	}()
	ps, err := h.exec.Wait(context.Background())

	// pilot-agent does not take Envoy with it when it dies by SIGKILL: kill what is left of the process group
	// now, so an orphaned Envoy never holds the ports the next start needs.
	if ps != nil {
		if serr := h.exec.Shutdown("SIGKILL", 0); serr != nil {
			h.logger.Debug("cleaning up the proxy's process group", "error", serr)
		}
	}

	h.stateLock.Lock()
	defer h.stateLock.Unlock()
	h.completedAt = time.Now()
	if err != nil {
		h.exitResult = &drivers.ExitResult{Err: err}
		h.procState = drivers.TaskStateUnknown
		return
	}
	h.exitResult = &drivers.ExitResult{ExitCode: ps.ExitCode, Signal: ps.Signal}
	if ps.ExitCode == 0 && ps.Signal == 0 && !h.stopping() {
		h.exitResult.Err = errEnvoyExited
	}
	h.procState = drivers.TaskStateExited
	h.completedAt = ps.Time
}
