package main

import (
	"fmt"
	"io"
)

// cmdApply installs the ruleset by hand, one iptables-restore transaction per family, as StartTask does.
// It insists on --netns or --host: intercepting the host's own traffic must never happen by omission.
func cmdApply(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("apply", "--config FILE [--plugin-config FILE] (--netns PATH | --host) [--alloc ID] [--state-dir DIR]", stderr)
	var t taskFlags
	t.register(fs)
	stateDir := stateDirFlag(fs)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if t.netns == "" && !t.host {
		return usageError(stderr, fs.Name(), "give --netns PATH, or --host to intercept this process's (the host's) namespace")
	}
	rs, code := t.ruleset(fs.Name(), stderr)
	if code != exitOK {
		return code
	}
	ctx, cancel := operationContext()
	defer cancel()
	reports, err := namespaces(*stateDir).Apply(ctx, t.netns, rs)
	if err != nil {
		return failure(stderr, fs.Name(), err)
	}
	for _, r := range reports {
		fmt.Fprintln(stdout, r.String())
	}
	return exitOK
}
