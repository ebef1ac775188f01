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
	"strconv"
	"strings"
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
	if args[2] != "-" {
		return keepCaps(uid, gid, strings.Split(args[2], ","), path, cmd)
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

// keepCaps execs setpriv to drop to uid:gid with no supplementary group, keeping only caps: inheritable and
// ambient, so that they survive the exec of the command and of its children (pilot-agent starts Envoy).
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
		"--bounding-set=-all," + strings.Join(list, ","), "--", path}, cmd[1:]...)
	return syscall.Exec(Setpriv, argv, os.Environ())
}
