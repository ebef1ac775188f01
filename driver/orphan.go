package driver

import (
	"fmt"
	"os"
	"syscall"
)

// killOrphanGroup kills what is left of a proxy whose executor is gone (it crashed, or could not be
// reattached after a plugin restart): nothing else would ever stop that pilot-agent and Envoy, and they would
// hold the proxy's ports, the namespace and the workload's identity. The executor started pilot-agent as a
// process group leader; its working directory, the task dir, proves the pid was not reused by something else.
func killOrphanGroup(pid int, taskDir string) {
	if pid <= 0 {
		return
	}
	if cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid)); err != nil || cwd != taskDir {
		return
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
}
