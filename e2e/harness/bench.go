package harness

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/istio-sidecar/istio-sidecar/driver/proxy"
)

// What the benchmark reads: timestamps of task events and of the task runner's hooks, readiness as seen from
// outside the driver, and memory from /proc. Nothing here asserts a figure; the benchmark prints them.

// TimedEvent is a task event with its time, as Nomad stored it. Driver events carry the driver's own clock
// (the client copies the plugin's timestamp), the others the client's: both are this host's clock.
type TimedEvent struct {
	Time    time.Time
	Type    string
	Message string
}

// TimedEvents returns the task's events, oldest first.
func (a *Agent) TimedEvents(t T, allocID, task string) []TimedEvent {
	t.Helper()
	return timedEvents(a.taskState(t, allocID, task).Events)
}

func timedEvents(events []*api.TaskEvent) []TimedEvent {
	out := make([]TimedEvent, 0, len(events))
	for _, e := range events {
		out = append(out, TimedEvent{Time: time.Unix(0, e.Time), Type: e.Type, Message: EventMessage(e)})
	}
	return out
}

// FirstEvent returns the first event whose type is typ (any type when "") and whose message starts with prefix.
func FirstEvent(events []TimedEvent, typ, prefix string) (TimedEvent, bool) {
	for _, e := range events {
		if (typ == "" || e.Type == typ) && strings.HasPrefix(e.Message, prefix) {
			return e, true
		}
	}
	return TimedEvent{}, false
}

// prestartEnd matches the task runner's TRACE line written when a task's prestart hooks are done, right before
// it builds the task config and calls the driver's StartTask.
var prestartEnd = regexp.MustCompile(`finished prestart hooks: alloc_id=(\S+) task=(\S+) end="([^"]+)"`)

// PrestartEnd returns when the task runner finished the task's prestart hooks: the moment Nomad turns to the
// driver. It reads the agent log, so the agent must run with LogLevel "TRACE".
func (a *Agent) PrestartEnd(allocID, task string) (time.Time, error) {
	f, err := os.Open(a.LogPath)
	if err != nil {
		return time.Time{}, fmt.Errorf("reading agent log: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := prestartEnd.FindStringSubmatch(sc.Text())
		if m == nil || m[1] != allocID || m[2] != task {
			continue
		}
		// hclog renders a time.Time with %v: "2006-01-02 15:04:05.999999999 -0700 MST m=+1.234".
		v, _, _ := strings.Cut(m[3], " m=")
		return time.Parse("2006-01-02 15:04:05.999999999 -0700 MST", v)
	}
	if err := sc.Err(); err != nil {
		return time.Time{}, fmt.Errorf("reading agent log: %w", err)
	}
	return time.Time{}, fmt.Errorf("no \"finished prestart hooks\" line for task %s of allocation %s in %s "+
		"(the agent must log at TRACE)", task, allocID, a.LogPath)
}

// WaitProxyReady polls the proxy's readiness URL (Envoy's 15021, routed to pilot-agent) in the allocation's
// network namespace, the way the driver does but at the given interval, and returns when it first answered
// 200. It works for any driver that runs pilot-agent in the group namespace.
func WaitProxyReady(ctx context.Context, allocID string, interval time.Duration) (time.Time, error) {
	nsPath := NetnsPath(allocID)
	if err := poll(time.Until(deadlineOr(ctx, allocTimeout)), interval, ctx.Err, "network namespace "+nsPath, func() (bool, string) {
		_, err := os.Stat(nsPath)
		return err == nil, fmt.Sprint(err)
	}); err != nil {
		return time.Time{}, err
	}
	client := proxy.Client(nsPath, 2*time.Second)
	if err := proxy.WaitReady(ctx, client, interval, func() error { return nil }); err != nil {
		return time.Time{}, err
	}
	return time.Now(), nil
}

func deadlineOr(ctx context.Context, d time.Duration) time.Time {
	if dl, ok := ctx.Deadline(); ok {
		return dl
	}
	return time.Now().Add(d)
}

// Mem is a process's resident memory in bytes: RSS counts shared pages in full (the executors of one binary
// share their text), PSS divides them among the processes that map them.
type Mem struct {
	RSS, PSS uint64
}

// ProcMem reads a process's memory from /proc/<pid>/smaps_rollup.
func ProcMem(pid int) (Mem, error) {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "smaps_rollup"))
	if err != nil {
		return Mem{}, err
	}
	var m Mem
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || f[2] != "kB" {
			continue
		}
		kb, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			continue
		}
		switch f[0] {
		case "Rss:":
			m.RSS = kb << 10
		case "Pss:":
			m.PSS = kb << 10
		}
	}
	return m, nil
}

// ExecutorProc is one Nomad executor process (`<binary> executor <json>`) of this agent.
type ExecutorProc struct {
	PID     int
	AllocID string
	Task    string
}

// Executors returns this agent's executor processes, identified by the log file named in their JSON argument:
// <data_dir>/alloc/<allocID>/<task>/executor.out.
func (a *Agent) Executors() ([]ExecutorProc, error) {
	procs, err := findProcs(func(p process) bool { return len(p.Cmdline) == 3 && p.Cmdline[1] == "executor" })
	if err != nil {
		return nil, err
	}
	allocRoot := filepath.Join(a.DataDir, "alloc") + string(filepath.Separator)
	var out []ExecutorProc
	for _, p := range procs {
		var cfg struct{ LogFile string }
		if err := json.Unmarshal([]byte(p.Cmdline[2]), &cfg); err != nil {
			continue
		}
		rel, ok := strings.CutPrefix(cfg.LogFile, allocRoot)
		if !ok {
			continue
		}
		parts := strings.Split(rel, string(filepath.Separator))
		if len(parts) != 3 {
			continue
		}
		out = append(out, ExecutorProc{PID: p.PID, AllocID: parts[0], Task: parts[1]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PID < out[j].PID })
	return out, nil
}

// LogLines returns the agent log lines that match re, such as iptables' xtables lock complaints.
func (a *Agent) LogLines(re *regexp.Regexp) ([]string, error) {
	data, err := os.ReadFile(a.LogPath)
	if err != nil {
		return nil, fmt.Errorf("reading agent log: %w", err)
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		if re.MatchString(line) {
			out = append(out, line)
		}
	}
	return out, nil
}

// WaitJobSettled waits until the job has n allocations that each either run every task (prestart sidecars and
// main tasks alike) or have ended, and returns the job's allocations. Failures are for the caller to count.
func (a *Agent) WaitJobSettled(t T, jobID string, n int, timeout time.Duration) []*api.AllocationListStub {
	t.Helper()
	var stubs []*api.AllocationListStub
	a.Wait(t, timeout, fmt.Sprintf("%d allocations of job %s running every task or ended", n, jobID), func() (bool, string) {
		all, _, err := a.Client.Jobs().Allocations(jobID, true, nil)
		if err != nil {
			return false, err.Error()
		}
		running, ended := 0, 0
		for _, s := range all {
			a.noteAlloc(s.ID)
			switch {
			case clientTerminal(s.ClientStatus):
				ended++
			case AllTasksRunning(s):
				running++
			}
		}
		stubs = all
		return running+ended >= n, fmt.Sprintf("%d of %d running, %d ended (%d allocations)", running, n, ended, len(all))
	})
	return stubs
}

// AllTasksRunning reports whether every task of the allocation is running.
func AllTasksRunning(s *api.AllocationListStub) bool {
	if s.ClientStatus != api.AllocClientStatusRunning || len(s.TaskStates) == 0 {
		return false
	}
	for _, ts := range s.TaskStates {
		if ts.State != TaskStateRunning {
			return false
		}
	}
	return true
}

// ReadyWatch polls the proxy readiness of every allocation of a job from the moment the allocation appears.
type ReadyWatch struct {
	mu sync.Mutex
	at map[string]time.Time
}

// WatchReady starts watching the job until ctx ends.
func (a *Agent) WatchReady(ctx context.Context, jobID string, poll time.Duration) *ReadyWatch {
	w := &ReadyWatch{at: map[string]time.Time{}}
	go func() {
		seen := map[string]bool{}
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			stubs, _, _ := a.Client.Jobs().Allocations(jobID, true, nil)
			for _, s := range stubs {
				if seen[s.ID] {
					continue
				}
				seen[s.ID] = true
				go func(id string) {
					if at, err := WaitProxyReady(ctx, id, poll); err == nil {
						w.mu.Lock()
						w.at[id] = at
						w.mu.Unlock()
					}
				}(s.ID)
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

// Wait returns the ready times of ids once all are known, or what is known when ctx ends.
func (w *ReadyWatch) Wait(ctx context.Context, ids []string) map[string]time.Time {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		w.mu.Lock()
		out := map[string]time.Time{}
		for _, id := range ids {
			if at, ok := w.at[id]; ok {
				out[id] = at
			}
		}
		w.mu.Unlock()
		if len(out) == len(ids) {
			return out
		}
		select {
		case <-ctx.Done():
			return out
		case <-tick.C:
		}
	}
}
