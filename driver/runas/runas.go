// Package runas starts a program as an unprivileged user with no supplementary groups. The driver launches
// pilot-agent (and `nomad alloc exec` commands) through it rather than through the executor's User, because
// Nomad 1.6.3's executor builds the supplementary group list with leading zeros (setCmdUser: make, then
// append), which leaves group 0, root's group, on the proxy.
//
// It is a re-exec of the plugin's own binary, like Nomad's executor: argv[1] is Arg, then the UID, the GID,
// the capabilities to keep ("-" for none), "--" and the command. The init function below takes over such a
// process before main runs.
//
// Keeping a capability (TPROXY's CAP_NET_RAW, which Istio gets by running Envoy as root) needs it raised as
// an ambient capability across the UID change on every thread; a cgo binary cannot do that from Go, so that
// case execs util-linux's setpriv, which does the same drop with the capability kept.
package runas

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
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

// Argv returns the argv that runs cmd as uid:gid through self (the plugin binary), keeping the named
// capabilities (e.g. "net_raw") and no other.
func Argv(self string, uid, gid int, caps []string, cmd []string) []string {
	keep := "-"
	if len(caps) > 0 {
		keep = strings.Join(caps, ",")
	}
	return append([]string{self, Arg, strconv.Itoa(uid), strconv.Itoa(gid), keep, "--"}, cmd...)
}

// Setpriv is util-linux's setpriv, used when capabilities are kept.
var Setpriv = "/usr/bin/setpriv"

var capName = regexp.MustCompile(`^[a-z_]+$`)

// run drops to uid:gid and replaces this process with the command; it returns only on failure.
//
// The process can never gain a privilege afterwards (no_new_privs: a setuid binary such as su or mount, or a
// file capability, gives nothing), its bounding set is empty (TPROXY: only the kept capability), and no
// descriptor above 2 survives the exec: whatever the executor or the plugin left open is not the proxy's.
// no_new_privs and the bounding set belong to a thread, so all of it happens on the one that execs.
func run(args []string) error {
	if len(args) < 5 || args[3] != "--" {
		return fmt.Errorf("usage: %s UID GID CAPS|- -- COMMAND [ARG...]", Arg)
	}
	uid, err := strconv.Atoi(args[0])
	if err != nil || uid <= 0 {
		return fmt.Errorf("UID %q: must be a positive number (never root)", args[0])
	}
	gid, err := strconv.Atoi(args[1])
	if err != nil || gid <= 0 {
		return fmt.Errorf("GID %q: must be a positive number (never root's group)", args[1])
	}
	cmd := args[4:]
	path, err := exec.LookPath(cmd[0])
	if err != nil {
		return err
	}
	runtime.LockOSThread()
	if err := closeOnExec(); err != nil {
		return err
	}
	if args[2] != "-" {
		return keepCaps(uid, gid, strings.Split(args[2], ","), path, cmd)
	}
	if err := dropBoundingSet(); err != nil {
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
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("setting no_new_privs: %w", err)
	}
	return syscall.Exec(path, cmd, os.Environ())
}

// keepCaps execs setpriv to drop to uid:gid with no supplementary group, keeping only caps: inheritable and
// ambient, so that they survive the exec of the command and of its children (pilot-agent starts Envoy), and
// in the bounding set, with no_new_privs.
func keepCaps(uid, gid int, caps []string, path string, cmd []string) error {
	list := make([]string, len(caps))
	for i, c := range caps {
		if !capName.MatchString(c) {
			return fmt.Errorf("capability %q: not a capability name", c)
		}
		list[i] = "+" + c
	}
	argv := append([]string{Setpriv,
		"--reuid=" + strconv.Itoa(uid), "--regid=" + strconv.Itoa(gid), "--clear-groups",
		"--inh-caps=-all," + strings.Join(list, ","), "--ambient-caps=" + strings.Join(list, ","),
		"--bounding-set=-all," + strings.Join(list, ","), "--no-new-privs", "--", path}, cmd[1:]...)
	return syscall.Exec(Setpriv, argv, os.Environ())
}

// dropBoundingSet empties this thread's capability bounding set, which needs CAP_SETPCAP: before the UID drop.
func dropBoundingSet() error {
	last, err := lastCap()
	if err != nil {
		return err
	}
	for c := 0; c <= last; c++ {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
			return fmt.Errorf("dropping capability %d from the bounding set: %w", c, err)
		}
	}
	return nil
}

// lastCap is the highest capability this kernel knows.
func lastCap() (int, error) {
	data, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 0, fmt.Errorf("reading the last capability: %w", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return 0, fmt.Errorf("reading the last capability: %w", err)
	}
	return n, nil
}

// closeOnExec marks every descriptor above 2 close-on-exec: close_range (Linux 5.11), else one by one.
func closeOnExec() error {
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err == nil {
		return nil
	}
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return fmt.Errorf("listing open descriptors: %w", err)
	}
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd < 3 {
			continue
		}
		// The directory's own descriptor is among them, closed by now: EBADF is fine.
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC); err != nil && err != unix.EBADF {
			return fmt.Errorf("descriptor %d: %w", fd, err)
		}
	}
	return nil
}
