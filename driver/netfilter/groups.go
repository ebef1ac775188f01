package netfilter

import (
	"errors"
	"fmt"
	"os/user"
	"strconv"
)

// LookupGroups resolves group names to GIDs in this host's group database, through the same lookup iptables
// itself would make, for rules.Env.GroupIDs. The group namespace of a bridge-mode task shares the host's
// files, so the host's answer is the task's. A name the host does not know is left out, for rules.Parse to
// refuse by field and value; any other failure of the lookup is an error.
func LookupGroups(names []string) (map[string]uint32, error) {
	if len(names) == 0 {
		return nil, nil
	}
	ids := make(map[string]uint32, len(names))
	for _, name := range names {
		g, err := user.LookupGroup(name)
		var unknown user.UnknownGroupError
		if errors.As(err, &unknown) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("looking up group %q: %w", name, err)
		}
		gid, err := strconv.ParseUint(g.Gid, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("group %q has GID %q, not a number: %w", name, g.Gid, err)
		}
		ids[name] = uint32(gid)
	}
	return ids, nil
}
