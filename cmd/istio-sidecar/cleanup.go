package main

import (
	"fmt"
	"io"
	"sort"

	"github.com/istio-sidecar/istio-sidecar/driver/netfilter"
)

// cmdCleanup removes rules by tag, as the driver does when an allocation ends: one allocation's, or every
// allocation's found in the namespace, all in one transaction per family, so that a namespace two writers
// left with two owners (whose chains each other's jumps refer to) converges in one run. It never recomputes
// a config.
func cmdCleanup(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("cleanup", "[--netns PATH] [--alloc ID] [--state-dir DIR]", stderr)
	netns := nsFlag(fs)
	alloc := fs.String("alloc", "", "remove only the rules of alloc `ID` (default: every allocation's)")
	stateDir := stateDirFlag(fs)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if code, ok := checkNetns(stderr, fs.Name(), *netns); !ok {
		return code
	}
	if *alloc != "" {
		if code, ok := checkAlloc(stderr, fs.Name(), *alloc); !ok {
			return code
		}
	}
	ctx, cancel := operationContext()
	defer cancel()
	res, err := namespaces(*stateDir).Cleanup(ctx, *netns, *alloc)
	if err != nil {
		return failure(stderr, fs.Name(), err)
	}
	if *alloc != "" && res.RemovedBy[*alloc] == 0 {
		res.RemovedBy = map[string]int{*alloc: 0}
	}
	if len(res.RemovedBy) == 0 {
		fmt.Fprintf(stderr, "no interception rules in %s\n", where(*netns))
		return exitOK
	}
	owners := make([]string, 0, len(res.RemovedBy))
	for o := range res.RemovedBy {
		owners = append(owners, o)
	}
	sort.Strings(owners)
	for i, o := range owners {
		extra := ""
		if res.Passthrough6Removed && i == len(owners)-1 {
			extra = ", " + netfilter.Passthrough6 + " removed from lo"
		}
		fmt.Fprintf(stdout, "%s: %d rules removed%s\n", o, res.RemovedBy[o], extra)
	}
	return exitOK
}
