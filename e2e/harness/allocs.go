package harness

import (
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/nomad/api"
)

// WaitAlloc waits until the job's newest allocation reaches the client status (api.AllocClientStatus*) and returns
// it. It fails at once, with the tasks' events, when the allocation ends in another terminal status instead.
func (a *Agent) WaitAlloc(t T, jobID, status string) *api.Allocation {
	t.Helper()
	var alloc *api.Allocation
	var wrongEnd string
	a.Wait(t, allocTimeout, fmt.Sprintf("an allocation of job %s %s", jobID, status), func() (bool, string) {
		stubs, _, err := a.Client.Jobs().Allocations(jobID, true, nil)
		if err != nil {
			return false, err.Error()
		}
		if len(stubs) == 0 {
			return false, "no allocation yet"
		}
		sort.Slice(stubs, func(i, j int) bool { return stubs[i].CreateIndex > stubs[j].CreateIndex })
		for _, s := range stubs {
			a.noteAlloc(s.ID)
		}
		newest := stubs[0]
		if newest.ClientStatus != status && !clientTerminal(newest.ClientStatus) {
			return false, fmt.Sprintf("allocation %s is %s", newest.ID, newest.ClientStatus)
		}
		al, _, err := a.Client.Allocations().Info(newest.ID, nil)
		if err != nil {
			return false, err.Error()
		}
		alloc = al
		if al.ClientStatus != status {
			wrongEnd = fmt.Sprintf("allocation %s ended %s (%s) while waiting for %s; events:\n%s",
				al.ID, al.ClientStatus, al.ClientDescription, status, strings.Join(AllocEvents(al), "\n"))
		}
		return true, ""
	})
	if wrongEnd != "" {
		t.Fatalf("%v", wrongEnd)
	}
	return alloc
}

// Task states as Nomad reports them; the api package has no constants for them.
const (
	TaskStatePending = "pending"
	TaskStateRunning = "running"
	TaskStateDead    = "dead"
)

// WaitTaskState waits until the task reaches the state (TaskStatePending, TaskStateRunning or TaskStateDead) and
// returns it. It
// fails at once, with the task's events, when the task is dead while the test waits for another state.
func (a *Agent) WaitTaskState(t T, allocID, task, state string) *api.TaskState {
	t.Helper()
	a.noteAlloc(allocID)
	var ts *api.TaskState
	a.Wait(t, allocTimeout, fmt.Sprintf("task %s of allocation %s %s", task, allocID, state), func() (bool, string) {
		al, _, err := a.Client.Allocations().Info(allocID, nil)
		if err != nil {
			return false, err.Error()
		}
		s, found := al.TaskStates[task]
		if !found {
			return false, fmt.Sprintf("task %s has no state (allocation %s)", task, al.ClientStatus)
		}
		ts = s
		return s.State == state || s.State == TaskStateDead, "state " + s.State
	})
	if ts.State != state {
		t.Fatalf("task %s of allocation %s is dead (failed=%t) while waiting for %s; events:\n%s",
			task, allocID, ts.Failed, state, strings.Join(FormatEvents(ts.Events), "\n"))
	}
	return ts
}

// TaskEvents returns the task's events as readable lines, oldest first.
func (a *Agent) TaskEvents(t T, allocID, task string) []string {
	t.Helper()
	return FormatEvents(a.taskState(t, allocID, task).Events)
}

// taskState reads a task's current state, failing the test when the allocation has no such task.
func (a *Agent) taskState(t T, allocID, task string) *api.TaskState {
	t.Helper()
	al, _, err := a.Client.Allocations().Info(allocID, nil)
	if err != nil {
		t.Fatalf("reading allocation %s: %v", allocID, err)
	}
	s, found := al.TaskStates[task]
	if !found {
		t.Fatalf("allocation %s has no task %s (tasks: %v)", allocID, task, taskNames(al))
	}
	return s
}

// AllocEvents returns the events of all the allocation's tasks, each line prefixed with its task name.
func AllocEvents(al *api.Allocation) []string {
	var lines []string
	for _, task := range taskNames(al) {
		for _, e := range FormatEvents(al.TaskStates[task].Events) {
			lines = append(lines, task+": "+e)
		}
	}
	return lines
}

// FormatEvents renders task events as "Type: message" lines, such as "Terminated: Exit Code: 0".
func FormatEvents(events []*api.TaskEvent) []string {
	lines := make([]string, 0, len(events))
	for _, e := range events {
		lines = append(lines, strings.TrimSpace(e.Type+": "+EventMessage(e)))
	}
	return lines
}

func taskNames(al *api.Allocation) []string {
	names := make([]string, 0, len(al.TaskStates))
	for name := range al.TaskStates {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}
