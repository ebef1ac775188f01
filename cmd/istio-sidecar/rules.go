package main

import (
	"fmt"
	"io"
)

// cmdRules prints, without changing anything, the iptables-restore payload of each family that StartTask
// would apply for the task config.
func cmdRules(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("rules", "--config FILE [--plugin-config FILE] [--alloc ID] [--netns PATH | --host]", stderr)
	var t taskFlags
	t.register(fs)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	rs, code := t.ruleset(fs.Name(), stderr)
	if code != exitOK {
		return code
	}
	for _, fr := range rs.Families {
		fmt.Fprintf(stdout, "# %s\n%s", fr.Family, rs.Payload(fr.Family))
	}
	return exitOK
}
