package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/hashicorp/nomad/api"
)

// allocTimeout bounds waits on allocations and tasks: placement, start, and exit of short tasks.
const allocTimeout = 90 * time.Second

// JobsDir returns e2e/jobs at the repository root, where every scenario's jobspec lives.
func JobsDir() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "e2e", "jobs"), nil
}

// jobspec reads a jobspec file, relative to e2e/jobs unless absolute.
func jobspec(t T, file string) []byte {
	t.Helper()
	path := file
	if !filepath.IsAbs(path) {
		dir, err := JobsDir()
		if err != nil {
			t.Fatalf("locating jobspecs: %v", err)
		}
		path = filepath.Join(dir, file)
	}
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading jobspec: %v", err)
	}
	return src
}

// ParseJob parses a jobspec through the agent's /v1/jobs/parse, so the job is exactly what Nomad v1.6.3 reads
// from the file. file is relative to e2e/jobs (or absolute); vars are the jobspec's HCL2 variables.
func (a *Agent) ParseJob(t T, file string, vars map[string]string) *api.Job {
	t.Helper()
	src := jobspec(t, file)
	all := make(map[string]any, len(vars))
	for k, v := range vars {
		all[k] = v
	}
	body, err := hclBody(all) // strings always render
	if err != nil {
		t.Fatalf("%v", err)
	}
	job, err := a.Client.Jobs().ParseHCLOpts(&api.JobsParseRequest{
		JobHCL:       string(src),
		Variables:    body,
		Canonicalize: true,
	})
	if err != nil {
		t.Fatalf("parsing %s with variables %v: %v", file, vars, err)
	}
	return job
}

// RegisterJob parses and registers a jobspec from e2e/jobs and returns the job and its registration evaluation.
func (a *Agent) RegisterJob(t T, file string, vars map[string]string) (*api.Job, string) {
	t.Helper()
	job := a.ParseJob(t, file, vars)
	resp, _, err := a.Client.Jobs().Register(job, nil)
	if err != nil {
		t.Fatalf("registering job %s from %s: %v", *job.ID, file, err)
	}
	t.Logf("registered job %s (eval %s)", *job.ID, resp.EvalID)
	return job, resp.EvalID
}

// WaitEval waits until the evaluation is no longer pending and returns it. A job that cannot be placed gives a
// complete evaluation with FailedTGAllocs and a BlockedEval; see PlacementFailures.
func (a *Agent) WaitEval(t T, evalID string) *api.Evaluation {
	t.Helper()
	var eval *api.Evaluation
	a.Wait(t, allocTimeout, "evaluation "+evalID+" processed", func() (bool, string) {
		e, _, err := a.Client.Evaluations().Info(evalID, nil)
		if err != nil {
			return false, err.Error()
		}
		eval = e
		return e.Status != api.EvalStatusPending, "status " + e.Status
	})
	return eval
}

// PlacementFailures renders an evaluation's failed placements as one line per task group, such as
// `group "app": 1 of 1 nodes filtered: constraint "missing drivers" filtered 1`.
func PlacementFailures(eval *api.Evaluation) []string {
	groups := make([]string, 0, len(eval.FailedTGAllocs))
	for g := range eval.FailedTGAllocs {
		groups = append(groups, g)
	}
	sort.Strings(groups)
	var lines []string
	for _, g := range groups {
		m := eval.FailedTGAllocs[g]
		line := fmt.Sprintf("group %q: %d of %d nodes filtered", g, m.NodesFiltered, m.NodesEvaluated)
		for _, reason := range sortedKeys(m.ConstraintFiltered) {
			line += fmt.Sprintf(": constraint %q filtered %d", reason, m.ConstraintFiltered[reason])
		}
		for _, class := range sortedKeys(m.ClassFiltered) {
			line += fmt.Sprintf(": class %q filtered %d", class, m.ClassFiltered[class])
		}
		for _, dim := range sortedKeys(m.DimensionExhausted) {
			line += fmt.Sprintf(": %q exhausted on %d", dim, m.DimensionExhausted[dim])
		}
		lines = append(lines, line)
	}
	return lines
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// StopJob deregisters the job (without purging, so its allocations stay readable) and waits until all its
// allocations are terminal.
func (a *Agent) StopJob(t T, jobID string) {
	t.Helper()
	if _, _, err := a.Client.Jobs().Deregister(jobID, false, nil); err != nil {
		t.Fatalf("stopping job %s: %v", jobID, err)
	}
	a.WaitAllocsTerminal(t, jobID)
}

// WaitAllocsTerminal waits until every allocation of the job has finished on the client (complete, failed or lost)
// and the client has torn down its network namespace.
func (a *Agent) WaitAllocsTerminal(t T, jobID string) {
	t.Helper()
	if err := a.waitAllocsTerminal(jobID, allocTimeout); err != nil {
		t.Fatalf("%v", err)
	}
}

func (a *Agent) waitAllocsTerminal(jobID string, timeout time.Duration) error {
	return a.waitAllocsTerminalIn("", jobID, timeout)
}

// waitAllocsTerminalIn is waitAllocsTerminal for a job in namespace ns ("" is the client's, default).
func (a *Agent) waitAllocsTerminalIn(ns, jobID string, timeout time.Duration) error {
	return poll(timeout, pollInterval, a.exitedErr, "allocations of job "+jobID+" terminal", func() (bool, string) {
		stubs, _, err := a.Client.Jobs().Allocations(jobID, true, &api.QueryOptions{Namespace: ns})
		if err != nil {
			return false, err.Error()
		}
		var running []string
		for _, s := range stubs {
			a.noteAlloc(s.ID)
			switch {
			case !clientTerminal(s.ClientStatus):
				running = append(running, s.ID[:8]+" "+s.ClientStatus)
			case netnsMounted(s.ID):
				// The client reports an allocation complete once its tasks are dead, but removes the namespace
				// in the alloc runner's postrun hooks, after every task runner has returned; stopping the agent
				// in between leaves it behind. After an agent restart that gap was seen to last over a second
				// (the task runner waits for its reattached logmon), and CI's shutdown fell into it.
				running = append(running, s.ID[:8]+" "+s.ClientStatus+", network namespace still mounted")
			}
		}
		return len(running) == 0, fmt.Sprintf("not terminal: %v", running)
	})
}

// netnsMounted says whether the client still holds the allocation's network namespace (bridge or CNI mode).
func netnsMounted(allocID string) bool {
	_, err := os.Lstat(NetnsPath(allocID))
	return err == nil
}

func clientTerminal(status string) bool {
	switch status {
	case api.AllocClientStatusComplete, api.AllocClientStatusFailed, api.AllocClientStatusLost:
		return true
	}
	return false
}

func (a *Agent) noteAlloc(id string) {
	a.mu.Lock()
	a.allocs[id] = true
	a.mu.Unlock()
}

// allocIDs returns, sorted, every allocation the harness saw.
func (a *Agent) allocIDs() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	ids := make([]string, 0, len(a.allocs))
	for id := range a.allocs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}
