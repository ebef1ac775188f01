package driver

import (
	"fmt"

	"github.com/hashicorp/nomad/drivers/shared/executor"
	"github.com/hashicorp/nomad/plugins/drivers"
	pstructs "github.com/hashicorp/nomad/plugins/shared/structs"
)

// RecoverTask reattaches to a proxy that kept running under its executor while the plugin was gone, and
// rebuilds every piece of in-memory state from the persisted TaskState. It is idempotent.
func (d *Driver) RecoverTask(handle *drivers.TaskHandle) error {
	if handle == nil {
		return fmt.Errorf("recovering a task: no handle")
	}
	if _, ok := d.tasks.Get(handle.Config.ID); ok {
		return nil
	}
	var st TaskState
	if err := handle.GetDriverState(&st); err != nil {
		return fmt.Errorf("recovering task %s: decoding the driver state: %w", handle.Config.ID, err)
	}
	rc, err := pstructs.ReattachConfigToGoPlugin(st.ReattachConfig)
	if err != nil {
		return fmt.Errorf("recovering task %s: reattach config: %w", handle.Config.ID, err)
	}
	rs, err := st.Interception.ruleset(d.settings, st.TaskConfig.AllocID)
	if err != nil {
		return fmt.Errorf("recovering task %s: rebuilding its interception rules: %w", handle.Config.ID, err)
	}
	logger := d.logger.With("alloc_id", handle.Config.AllocID, "task", handle.Config.Name)
	exec, client, err := executor.ReattachToExecutor(rc, logger)
	if err != nil {
		// Nomad will start the task anew; a proxy left running without its executor would hold the ports.
		killOrphanGroup(st.Pid, st.TaskConfig.TaskDir().Dir)
		return fmt.Errorf("recovering task %s: reattaching to the executor: %w", handle.Config.ID, err)
	}
	h := &taskHandle{
		exec:         exec,
		pluginClient: client,
		logger:       logger,
		taskConfig:   st.TaskConfig,
		config:       st.Config,
		netnsPath:    st.NetnsPath,
		pid:          st.Pid,
		startedAt:    st.StartedAt,
		procState:    drivers.TaskStateRunning,
		exitResult:   &drivers.ExitResult{},
		doneCh:       make(chan struct{}),
		stopCh:       make(chan struct{}),
	}
	h.lease = d.allocs.Recover(st.TaskConfig.AllocID, st.NetnsPath, rs)
	d.track(h)
	go d.watchDrift(h)
	return nil
}
