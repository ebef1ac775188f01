package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/nomad/api"
)

// Vars are a jobspec's HCL2 variables for ParseJobVars. Values may be string, bool, int, []string or
// map[string]string, rendered as HCL (so list(string) variables take a []string), unlike ParseJob's strings. HCL
// interpolates variable values: write $${NOMAD_ALLOC_DIR} for a runtime ${NOMAD_ALLOC_DIR}.
type Vars map[string]any

// ExampleFile returns example/<name> at the repository root: the jobspecs users copy, which the e2e suite runs
// as they are.
func ExampleFile(t T, name string) string {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatalf("locating the examples: %v", err)
	}
	return filepath.Join(root, "example", name)
}

// ParseJobVars parses a jobspec like ParseJob, with typed variables. When id is not empty it becomes the job's ID
// and name: HCL2 cannot take a job's label from a variable, and tests that run one file twice need two IDs.
func (a *Agent) ParseJobVars(t T, file, id string, vars Vars) *api.Job {
	t.Helper()
	body, err := hclBody(vars)
	if err != nil {
		t.Fatalf("variables: %v", err)
	}
	src := jobspec(t, file)
	job, err := a.Client.Jobs().ParseHCLOpts(&api.JobsParseRequest{JobHCL: string(src), Variables: body, Canonicalize: true})
	if err != nil {
		t.Fatalf("parsing %s with variables:\n%s: %v", file, body, err)
	}
	if id != "" {
		job.ID, job.Name = &id, &id
	}
	return job
}

// Register registers a parsed job and returns its registration evaluation's ID.
func (a *Agent) Register(t T, job *api.Job) string {
	t.Helper()
	resp, _, err := a.Client.Jobs().Register(job, nil)
	if err != nil {
		t.Fatalf("registering job %s: %v", *job.ID, err)
	}
	t.Logf("registered job %s (eval %s)", *job.ID, resp.EvalID)
	return resp.EvalID
}

// PutVariable writes a Nomad Variable, such as nomad/jobs/<job> which that job's tasks may read from templates
// with their workload identity.
func (a *Agent) PutVariable(t T, path string, items map[string]string) {
	t.Helper()
	v := &api.Variable{Path: path, Items: api.VariableItems(items)}
	if _, _, err := a.Client.Variables().Create(v, nil); err != nil {
		t.Fatalf("writing variable %s: %v", path, err)
	}
}

// TaskEventsRaw returns the task's events, oldest first, with their times.
func (a *Agent) TaskEventsRaw(t T, allocID, task string) []*api.TaskEvent {
	t.Helper()
	return a.taskState(t, allocID, task).Events
}

// WaitTaskEvent waits until one of the task's events satisfies match and returns it.
func (a *Agent) WaitTaskEvent(t T, allocID, task, what string, timeout time.Duration, match func(*api.TaskEvent) bool) *api.TaskEvent {
	t.Helper()
	var found *api.TaskEvent
	a.Wait(t, timeout, fmt.Sprintf("task %s of allocation %s: %s", task, allocID, what), func() (bool, string) {
		al, _, err := a.Client.Allocations().Info(allocID, nil)
		if err != nil {
			return false, err.Error()
		}
		s, ok := al.TaskStates[task]
		if !ok {
			return false, "no task state yet"
		}
		for _, e := range s.Events {
			if match(e) {
				found = e
				return true, ""
			}
		}
		return false, strings.Join(FormatEvents(s.Events), "; ")
	})
	return found
}

// EventMessage is the text of an event as `nomad alloc status` shows it.
func EventMessage(e *api.TaskEvent) string {
	if e.DisplayMessage != "" {
		return e.DisplayMessage
	}
	return e.Message
}

var pilotAgentPID = regexp.MustCompile(`Proxy started: pilot-agent pid (\d+)`)

// PilotAgentPIDs returns, oldest first, the pilot-agent PIDs the driver reported in the task's "Proxy started"
// events: one per start of the sidecar.
func PilotAgentPIDs(events []*api.TaskEvent) []int {
	var pids []int
	for _, e := range events {
		if m := pilotAgentPID.FindStringSubmatch(EventMessage(e)); m != nil {
			pid, _ := strconv.Atoi(m[1])
			pids = append(pids, pid)
		}
	}
	return pids
}

// ChildPIDs returns the live processes whose parent is pid: Envoy (or the stand-in) is pilot-agent's child.
func ChildPIDs(pid int) []int {
	procs, _ := findProcs(func(p process) bool { return ppid(p.PID) == pid })
	return livePIDs(pidsOf(procs))
}

// Alive reports whether pid runs (a zombie does not).
func Alive(pid int) bool { return len(livePIDs([]int{pid})) == 1 }

// ProcsMatching returns the live processes whose command line contains substr and that belong to this agent.
func (a *Agent) ProcsMatching(t T, substr string) []int {
	t.Helper()
	procs, err := findProcs(func(p process) bool {
		return p.refersTo(a.Dir) && strings.Contains(strings.Join(p.Cmdline, " "), substr)
	})
	if err != nil {
		t.Fatalf("%v", err)
	}
	return livePIDs(pidsOf(procs))
}

func ppid(pid int) int {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return -1
	}
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return -1
	}
	fields := strings.Fields(s[i+1:])
	if len(fields) < 2 {
		return -1
	}
	n, _ := strconv.Atoi(fields[1])
	return n
}

// NetnsPath is where the client mounts a bridge-mode allocation's network namespace.
func NetnsPath(allocID string) string { return filepath.Join(netnsDir, allocID) }

// InNetns runs a command inside a network namespace (the host's when path is "") and returns its stdout.
func InNetns(path string, argv ...string) (string, error) {
	if path != "" {
		argv = append([]string{"nsenter", "--net=" + path, "--"}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, stderr.String())
	}
	return string(out), nil
}
