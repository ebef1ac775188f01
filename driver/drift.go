package driver

import (
	"strings"
	"time"
)

// watchDrift checks, while the proxy runs, that the namespace still holds exactly the allocation's rules. If
// someone flushed or edited them (a firewall reload, a stray `iptables -F`), app traffic would leave the mesh
// unnoticed; the check restores them in one transaction and says so in a task event.
func (d *Driver) watchDrift(h *taskHandle) {
	interval := d.settings.driftInterval
	if interval <= 0 {
		return
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-h.doneCh:
			return
		case <-h.stopCh:
			return
		case <-d.ctx.Done():
			return
		case <-ticker.C:
		}
		d.checkDrift(h, interval)
	}
}

// checkDrift verifies once, and repairs; the lease never re-applies rules a stop or a release is removing.
func (d *Driver) checkDrift(h *taskHandle, timeout time.Duration) {
	drifted, restored, err := h.lease.Repair(d.ctx, timeout)
	switch {
	case err != nil && !drifted:
		h.logger.Warn("checking the interception rules", "error", err)
	case err != nil:
		d.emit(h.taskConfig, "iptables: interception rules drifted and could not be restored: %v", err)
	case drifted:
		var done []string
		for _, r := range restored {
			done = append(done, r.String())
		}
		d.emit(h.taskConfig, "iptables: interception rules had drifted and were restored: %s", strings.Join(done, "; "))
	}
}
