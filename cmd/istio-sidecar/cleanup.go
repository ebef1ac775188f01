package main

import (
	"fmt"
	"io"

	"github.com/istio-sidecar/istio-sidecar/driver/netfilter"
)

// cmdCleanup removes rules by tag, as the driver does when an allocation ends: one allocation's, or every
// allocation's found in the namespace. It never recomputes a config.
func cmdCleanup(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("cleanup", "[--netns PATH] [--alloc ID]", stderr)
	netns := nsFlag(fs)
	alloc := fs.String("alloc", "", "remove only the rules of alloc `ID` (default: every allocation's)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if code, ok := checkNetns(stderr, fs.Name(), *netns); !ok {
		return code
	}
	ctx, cancel := operationContext()
	defer cancel()
	allocs := []string{*alloc}
	if *alloc != "" {
		if code, ok := checkAlloc(stderr, fs.Name(), *alloc); !ok {
			return code
		}
	} else {
		var err error
		if allocs, err = netfilter.Owners(ctx, *netns); err != nil {
			return failure(stderr, fs.Name(), err)
		}
		if len(allocs) == 0 {
			fmt.Fprintf(stderr, "no interception rules in %s\n", where(*netns))
			return exitOK
		}
	}
	code := exitOK
	for _, a := range allocs {
		res, err := netfilter.Cleanup(ctx, *netns, a)
		if err != nil {
			code = failure(stderr, fs.Name(), fmt.Errorf("alloc %s: %w", a, err))
			continue
		}
		extra := ""
		if res.Passthrough6Removed {
			extra = ", " + netfilter.Passthrough6 + " removed from lo"
		}
		fmt.Fprintf(stdout, "%s: %d rules removed%s\n", a, res.Removed, extra)
	}
	return code
}
