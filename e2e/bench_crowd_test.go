//go:build e2e

package e2e

import (
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/istio-sidecar/istio-sidecar/e2e/harness"
)

// crowdResult is benchGroups groups registered at once.
type crowdResult struct {
	allRunning, allReady time.Duration // from registration
	groups, running      int
	failed, restarts     int
	driverFailures       int
	lockLines            int
	plugin               harness.Mem
	sidecarExec          harness.Mem // median over the groups
}

func (r *benchRun) crowd(kind benchKind) crowdResult {
	b := r.b
	before := r.lockLines()
	id := "bench-crowd-" + strings.Fields(kind.name)[0]
	run := r.run(kind, id, benchGroups, crowdPoll)
	c := crowdResult{groups: len(run.allocs)}
	lastStart := r.countAllocs(&c, run)
	c.allRunning = lastStart.Sub(run.registered)
	for _, at := range run.ready {
		if d := at.Sub(run.registered); d > c.allReady {
			c.allReady = d
		}
	}
	for _, pid := range r.agent.PluginPIDs(b) {
		c.plugin = addMem(c.plugin, procMem(b, pid))
	}
	c.sidecarExec = r.medianSidecarExecutor(run)
	if c.running != benchGroups || len(run.ready) != c.running {
		b.Logf("%s: %d of %d groups running, %d proxies seen ready; events:\n%s", id, c.running, benchGroups,
			len(run.ready), strings.Join(r.allocEvents(run), "\n"))
	}
	r.agent.StopJob(b, id)
	c.lockLines = r.lockLines() - before
	return c
}

// countAllocs adds the groups' failures, running groups, restarts and driver failures to c and returns when the
// last task started.
func (r *benchRun) countAllocs(c *crowdResult, run *jobRun) time.Time {
	var lastStart time.Time
	for _, s := range run.allocs {
		al, _, err := r.agent.Client.Allocations().Info(s.ID, nil)
		if err != nil {
			r.b.Fatal(err)
		}
		if al.ClientStatus == api.AllocClientStatusFailed {
			c.failed++
		}
		if harness.AllTasksRunning(s) {
			c.running++
		}
		for _, ts := range al.TaskStates {
			c.restarts += int(ts.Restarts)
			if ts.StartedAt.After(lastStart) {
				lastStart = ts.StartedAt
			}
			for _, e := range ts.Events {
				if e.Type == api.TaskDriverFailure {
					c.driverFailures++
				}
			}
		}
	}
	return lastStart
}

// medianSidecarExecutor returns the median memory of the executors of the job's sidecar tasks (zero when none
// runs), from one scan of /proc for all the job's groups, not one per group.
func (r *benchRun) medianSidecarExecutor(run *jobRun) harness.Mem {
	all, err := r.agent.Executors()
	if err != nil {
		r.b.Fatal(err)
	}
	ours := map[string]bool{}
	for _, s := range run.allocs {
		ours[s.ID] = true
	}
	var execs []harness.Mem
	for _, e := range all {
		if ours[e.AllocID] && e.Task == "sidecar" {
			execs = append(execs, procMem(r.b, e.PID))
		}
	}
	if len(execs) == 0 {
		return harness.Mem{}
	}
	sort.Slice(execs, func(i, j int) bool { return execs[i].RSS < execs[j].RSS })
	return execs[len(execs)/2]
}

func (r *benchRun) lockLines() int {
	lines, err := r.agent.LogLines(lockTrouble)
	if err != nil {
		r.b.Fatal(err)
	}
	return len(lines)
}
