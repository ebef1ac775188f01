package harness

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// process is what the harness reads about a process from /proc to decide whether it belongs to an agent.
type process struct {
	PID     int
	Cmdline []string
	Exe     string // target of /proc/<pid>/exe; "" when unreadable (kernel threads, races with exit)
	Cwd     string
	Environ []string
}

func (p process) String() string {
	return fmt.Sprintf("pid %d (%s)", p.PID, strings.Join(p.Cmdline, " "))
}

// refersTo reports whether the process's executable, arguments, working directory or environment mention dir.
// Every process an agent starts does: the plugin runs from plugin_dir, an executor's arguments name its log file in
// the alloc dir, and tasks (and what they start, such as Envoy under pilot-agent) inherit NOMAD_ALLOC_DIR and run in
// their task dir. Executors leave the agent's process tree (they start their own session), so the parent chain alone
// would miss them.
func (p process) refersTo(dir string) bool {
	if underDir(p.Exe, dir) || underDir(p.Cwd, dir) {
		return true
	}
	// The separator keeps /tmp/x-12 from matching another agent's /tmp/x-123.
	needle := dir + string(filepath.Separator)
	for _, s := range append(append([]string(nil), p.Cmdline...), p.Environ...) {
		if strings.Contains(s, needle) {
			return true
		}
	}
	return false
}

func underDir(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, dir+string(filepath.Separator))
}

// findProcs returns the processes, other than this test process, that match.
func findProcs(match func(process) bool) ([]process, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("listing processes: %w", err)
	}
	self := os.Getpid()
	var found []process
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		p, err := readProc(pid)
		if err != nil {
			continue // exited while we looked, or a kernel thread: neither can be a leftover
		}
		if match(p) {
			found = append(found, p)
		}
	}
	return found, nil
}

func readProc(pid int) (process, error) {
	dir := filepath.Join("/proc", strconv.Itoa(pid))
	cmdline, err := os.ReadFile(filepath.Join(dir, "cmdline"))
	if err != nil {
		return process{}, err
	}
	if len(cmdline) == 0 {
		return process{}, errors.New("no command line (kernel thread or zombie)")
	}
	p := process{PID: pid, Cmdline: splitNul(cmdline)}
	p.Exe, _ = os.Readlink(filepath.Join(dir, "exe"))
	p.Cwd, _ = os.Readlink(filepath.Join(dir, "cwd"))
	if env, err := os.ReadFile(filepath.Join(dir, "environ")); err == nil {
		p.Environ = splitNul(env)
	}
	return p, nil
}

func splitNul(b []byte) []string {
	var out []string
	for _, f := range bytes.Split(bytes.TrimRight(b, "\x00"), []byte{0}) {
		out = append(out, string(f))
	}
	return out
}

func pidsOf(procs []process) []int {
	pids := make([]int, 0, len(procs))
	for _, p := range procs {
		pids = append(pids, p.PID)
	}
	return pids
}

// PluginPIDs returns the running istio-sidecar plugin processes of this agent (not their executors, which are the
// same binary re-executed as `istio-sidecar executor <json>`). The plugin is copied into this agent's plugin_dir,
// so its path is unique to the agent and never matches another agent's plugin.
func (a *Agent) PluginPIDs(t T) []int {
	t.Helper()
	procs, err := findProcs(a.isPlugin)
	if err != nil {
		t.Fatalf("finding plugin processes: %v", err)
	}
	return pidsOf(procs)
}

func (a *Agent) isPlugin(p process) bool {
	path := filepath.Join(a.PluginDir, PluginName)
	if p.Exe != path && p.Cmdline[0] != path {
		return false
	}
	return len(p.Cmdline) < 2 || p.Cmdline[1] != "executor"
}

// KillPlugin SIGKILLs this agent's istio-sidecar plugin process, as a crash would, waits until it is gone and
// returns the PIDs it killed. It fails the test when no plugin process runs.
func (a *Agent) KillPlugin(t T) []int {
	t.Helper()
	pids := a.PluginPIDs(t)
	if len(pids) == 0 {
		t.Fatalf("no %s plugin process of this agent is running", PluginName)
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			t.Fatalf("SIGKILL plugin pid %d: %v", pid, err)
		}
	}
	err := poll(10*time.Second, 50*time.Millisecond, nil, "the killed plugin to exit", func() (bool, string) {
		alive := livePIDs(pids)
		return len(alive) == 0, fmt.Sprintf("still alive: %v", alive)
	})
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Logf("SIGKILLed plugin pid %v", pids)
	return pids
}

// livePIDs returns those of pids that still exist and are not zombies (a killed child of the agent stays a zombie
// until the agent reaps it, but it no longer runs).
func livePIDs(pids []int) []int {
	var alive []int
	for _, pid := range pids {
		stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		// The state follows the command name, which is in parentheses and may itself contain ") ".
		if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			continue
		}
		alive = append(alive, pid)
	}
	return alive
}

// leftovers returns this agent's processes that are still running: anything that refers to the agent's directory.
func (a *Agent) leftovers() ([]process, error) {
	procs, err := findProcs(func(p process) bool { return p.refersTo(a.Dir) })
	if err != nil {
		return nil, err
	}
	live := procs[:0]
	for _, p := range procs {
		if Alive(p.PID) {
			live = append(live, p)
		}
	}
	return live, nil
}
