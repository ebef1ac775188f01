// Package runas starts a program as an unprivileged user with no supplementary groups. The driver launches
// pilot-agent (and `nomad alloc exec` commands) through it rather than through the executor's User, because
// Nomad 1.6.3's executor builds the supplementary group list with leading zeros (setCmdUser: make, then
// append), which leaves group 0, root's group, on the proxy.
//
// It is a re-exec of the plugin's own binary, like Nomad's executor: argv[1] is Arg, then the UID, the GID,
// "--" and the command. The init function below takes over such a process before main runs.
package runas

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
)

// Arg marks a run-as re-exec in argv[1].
const Arg = "istio-sidecar-run-as"

func init() {
	if len(os.Args) > 1 && os.Args[1] == Arg {
		err := run(os.Args[2:])
		fmt.Fprintf(os.Stderr, "%s: %v\n", Arg, err)
		os.Exit(127)
	}
}

// Argv returns the argv that runs cmd as uid:gid through self (the plugin binary).
func Argv(self string, uid, gid int, cmd []string) []string {
	return append([]string{self, Arg, strconv.Itoa(uid), strconv.Itoa(gid), "--"}, cmd...)
}

// run drops to uid:gid and replaces this process with the command; it returns only on failure.
func run(args []string) error {
	if len(args) < 4 || args[2] != "--" {
		return fmt.Errorf("usage: %s UID GID -- COMMAND [ARG...]", Arg)
	}
	uid, err := strconv.Atoi(args[0])
	if err != nil || uid <= 0 {
		return fmt.Errorf("UID %q: must be a positive number (never root)", args[0])
	}
	gid, err := strconv.Atoi(args[1])
	if err != nil || gid <= 0 {
		return fmt.Errorf("GID %q: must be a positive number (never root's group)", args[1])
	}
	cmd := args[3:]
	path, err := exec.LookPath(cmd[0])
	if err != nil {
		return err
	}
	// Groups first, then the GID, then the UID: once the UID is dropped the others can no longer change.
	if err := syscall.Setgroups(nil); err != nil {
		return fmt.Errorf("clearing supplementary groups: %w", err)
	}
	if err := syscall.Setgid(gid); err != nil {
		return fmt.Errorf("setting GID %d: %w", gid, err)
	}
	if err := syscall.Setuid(uid); err != nil {
		return fmt.Errorf("setting UID %d: %w", uid, err)
	}
	return syscall.Exec(path, cmd, os.Environ())
}
