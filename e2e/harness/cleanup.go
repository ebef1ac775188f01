package harness

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/nomad/api"
)

const (
	// cleanupJobsTimeout bounds stopping every job at the end of a test (sidecars drain for a few seconds each).
	cleanupJobsTimeout = 90 * time.Second
	// leftoverTimeout is how long processes may take to go after the agent exited: an executor whose task was
	// just killed finishes its own shutdown asynchronously.
	leftoverTimeout = 15 * time.Second
	// netnsDir is where Nomad's client mounts each bridge-mode allocation's namespace, named by allocation ID.
	netnsDir = "/var/run/netns"
	// logTailLines caps the agent log written to a failed test's output; DEBUG logs grow fast.
	logTailLines = 2000
)

// shutdown is the agent's t.Cleanup: stop every job and wait for its allocations, stop the agent, then fail the
// test on anything the agent left behind (processes, network namespaces, cgroups, and with CheckHostRules the
// host's rules) after removing it, so one failed scenario does not break the next. It logs what it checked.
func (a *Agent) shutdown() {
	t := a.t
	if !a.hasExited() {
		if err := a.stopAllJobs(); err != nil {
			t.Errorf("stopping jobs at cleanup: %v", err)
		}
	}
	pid := a.PID()
	if err := a.stop(); err != nil {
		t.Errorf("stopping agent: %v", err)
	} else if pid != 0 {
		t.Logf("agent (pid %d) stopped", pid)
	}
	a.checkLeftoverProcs(t)
	a.checkNetns(t)
	if a.opts.CheckHostRules {
		a.checkHostRules(t)
	}
	a.removeCgroups(t)
	if t.Failed() {
		a.logAgentLog(t)
	}
	a.removeDir(t)
}

// stopAllJobs deregisters every job, in every namespace, and waits, under one deadline, until all their
// allocations are terminal.
func (a *Agent) stopAllJobs() error {
	all := &api.QueryOptions{Namespace: api.AllNamespacesNamespace}
	if stubs, _, err := a.Client.Allocations().List(all); err == nil {
		for _, s := range stubs {
			a.noteAlloc(s.ID)
		}
	}
	jobs, _, err := a.Client.Jobs().List(all)
	if err != nil {
		return fmt.Errorf("listing jobs: %w", err)
	}
	var errs []error
	for _, j := range jobs {
		if _, _, err := a.Client.Jobs().Deregister(j.ID, false, &api.WriteOptions{Namespace: j.Namespace}); err != nil {
			errs = append(errs, fmt.Errorf("stopping job %s: %w", j.ID, err))
		} else {
			a.t.Logf("stopped job %s", j.ID)
		}
	}
	deadline := time.Now().Add(cleanupJobsTimeout)
	for _, j := range jobs {
		if err := a.waitAllocsTerminalIn(j.Namespace, j.ID, time.Until(deadline)); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 && len(jobs) > 0 {
		a.t.Logf("allocations stopped: %s", strings.Join(a.allocIDs(), " "))
	}
	return errors.Join(errs...)
}

// checkLeftoverProcs fails the test when any process of this agent outlives it, and then kills those processes.
func (a *Agent) checkLeftoverProcs(t T) {
	var left []process
	err := poll(leftoverTimeout, pollInterval, nil, "the agent's processes to exit", func() (bool, string) {
		procs, err := a.leftovers()
		if err != nil {
			return false, err.Error()
		}
		left = procs
		return len(procs) == 0, fmt.Sprintf("%d left", len(procs))
	})
	if err == nil {
		t.Logf("processes of the agent (plugin, executors, pilot-agent, Envoy, apps): none left")
		return
	}
	var lines []string
	for _, p := range left {
		lines = append(lines, p.String())
		if err := syscall.Kill(p.PID, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			t.Errorf("SIGKILL leftover pid %d: %v", p.PID, err)
		}
	}
	t.Errorf("processes of this agent still running %s after it stopped (now SIGKILLed):\n%s",
		leftoverTimeout, strings.Join(lines, "\n"))
}

// checkNetns fails the test when the network namespace of any allocation the harness saw is still mounted after
// shutdown (the client tears it down when the allocation stops), and then removes it.
func (a *Agent) checkNetns(t T) {
	ids := a.allocIDs()
	var left []string
	err := poll(10*time.Second, pollInterval, nil, "allocation network namespaces removed", func() (bool, string) {
		left = left[:0]
		for _, id := range ids {
			if netnsMounted(id) {
				left = append(left, id)
			}
		}
		return len(left) == 0, fmt.Sprintf("still present: %v", left)
	})
	if err == nil {
		if len(ids) > 0 {
			t.Logf("network namespaces of allocations %s: gone", strings.Join(ids, " "))
		}
		return
	}
	for _, id := range left {
		path := NetnsPath(id)
		if err := syscall.Unmount(path, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
			t.Errorf("unmounting leftover netns %s: %v", path, err)
		}
		if err := os.Remove(path); err != nil {
			t.Errorf("removing leftover netns %s: %v", path, err)
		}
	}
	t.Errorf("network namespaces of allocations %v left in %s after shutdown (now removed)", left, netnsDir)
}

// removeCgroups removes the agent's own cgroup parent from every hierarchy. Nomad creates it (cpuset partitions
// on cgroups v1, task scopes on v2) and never removes it. rmdir only succeeds on a cgroup without processes, so a
// failure here means something of the agent still runs.
func (a *Agent) removeCgroups(t T) {
	ok := true
	roots, _ := filepath.Glob("/sys/fs/cgroup/*")
	roots = append(roots, "/sys/fs/cgroup")
	for _, root := range roots {
		parent := filepath.Join(root, a.CgroupParent)
		var dirs []string
		_ = filepath.WalkDir(parent, func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
		// Children before parents: cgroupfs refuses to remove a cgroup that has child cgroups.
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := os.Remove(dirs[i]); err != nil && !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("removing cgroup %s (something of the agent still runs in it): %v", dirs[i], err)
				ok = false
			}
		}
	}
	if ok {
		t.Logf("cgroups under %s: removed", a.CgroupParent)
	}
}

// logAgentLog writes the end of the agent's log to the test output.
func (a *Agent) logAgentLog(t T) {
	data, err := os.ReadFile(a.LogPath)
	if err != nil {
		t.Logf("agent log %s: %v", a.LogPath, err)
		return
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	tail := logTailLines
	if a.opts.FailureLogLines > 0 {
		tail = a.opts.FailureLogLines
	}
	if len(lines) > tail {
		t.Logf("agent log (last %d of %d lines of %s):", tail, len(lines), a.LogPath)
		lines = lines[len(lines)-tail:]
	} else {
		t.Logf("agent log (%s):", a.LogPath)
	}
	t.Logf("%s", "\n"+strings.Join(lines, "\n"))
}

// removeDir removes the agent's directory, unless ISTIO_SIDECAR_E2E_KEEP=1. Task directories can hold mounts (the
// secrets tmpfs Nomad mounts for every task when running as root), which must go first or removal fails with EBUSY.
func (a *Agent) removeDir(t T) {
	if err := unmountUnder(a.Dir); err != nil {
		t.Errorf("unmounting under %s: %v", a.Dir, err)
	}
	if os.Getenv("ISTIO_SIDECAR_E2E_KEEP") == "1" {
		t.Logf("kept agent directory %s (ISTIO_SIDECAR_E2E_KEEP=1)", a.Dir)
		return
	}
	if err := os.RemoveAll(a.Dir); err != nil {
		t.Errorf("removing agent directory: %v", err)
	}
}

// unmountUnder detaches every mount at or below dir, deepest first.
func unmountUnder(dir string) error {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return fmt.Errorf("reading mounts: %w", err)
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		if p := unescapeMount(fields[4]); underDir(p, dir) {
			points = append(points, p)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading mounts: %w", err)
	}
	sort.Sort(sort.Reverse(sort.StringSlice(points)))
	var errs []error
	for _, p := range points {
		if err := syscall.Unmount(p, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
			errs = append(errs, fmt.Errorf("unmounting %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space, for example).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var c byte
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &c); err == nil {
				b.WriteByte(c)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
