package driver

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/istio-sidecar/istio-sidecar/driver/netfilter"
	"github.com/istio-sidecar/istio-sidecar/driver/rules"
)

// watchDrift checks, while the proxy runs, that the namespace still holds exactly the allocation's rules. If
// someone flushed or edited them (a firewall reload, a stray `iptables -F`), app traffic would leave the mesh
// unnoticed; the check restores them in one transaction and says so in a task event.
func (d *Driver) watchDrift(h *taskHandle, rs rules.Ruleset) {
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
		d.checkDrift(h, rs, interval)
	}
}

// checkDrift verifies once, under the allocation's lock, so that it never re-applies rules that a stop or a
// grace-period release is removing.
func (d *Driver) checkDrift(h *taskHandle, rs rules.Ruleset, timeout time.Duration) {
	unlock := d.allocs.lock(h.taskConfig.AllocID)
	defer unlock()
	select {
	case <-h.stopCh:
		return
	case <-h.doneCh:
		return
	default:
	}
	ctx, cancel := context.WithTimeout(d.ctx, timeout)
	defer cancel()
	err := netfilter.Verify(ctx, h.netnsPath, rs)
	if err == nil {
		return
	}
	if !errors.Is(err, netfilter.ErrDrift) {
		h.logger.Warn("checking the interception rules", "error", err)
		return
	}
	reports, err := netfilter.Apply(ctx, h.netnsPath, rs)
	if err != nil {
		d.emit(h.taskConfig, "iptables: interception rules drifted and could not be restored: %v", err)
		return
	}
	var done []string
	for _, r := range reports {
		done = append(done, r.String())
	}
	d.emit(h.taskConfig, "iptables: interception rules had drifted and were restored: %s", strings.Join(done, "; "))
}
