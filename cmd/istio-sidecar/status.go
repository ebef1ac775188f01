package main

import (
	"fmt"
	"io"

	"github.com/istio-sidecar/istio-sidecar/driver/netfilter"
)

// cmdStatus lists the allocations owning rules in the namespace, one ID per line on stdout so that a script
// can read them as they are; what a person wants besides (the backend, "none") goes to stderr.
func cmdStatus(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("status", "[--netns PATH]", stderr)
	netns := nsFlag(fs)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if code, ok := checkNetns(stderr, fs.Name(), *netns); !ok {
		return code
	}
	ctx, cancel := operationContext()
	defer cancel()
	owners, err := netfilter.Owners(ctx, *netns)
	if err != nil {
		return failure(stderr, fs.Name(), err)
	}
	for _, o := range owners {
		fmt.Fprintln(stdout, o)
	}
	if len(owners) == 0 {
		fmt.Fprintf(stderr, "no interception rules in %s\n", where(*netns))
	}
	b, err := netfilter.Detect(ctx, *netns)
	if err != nil {
		return failure(stderr, fs.Name(), fmt.Errorf("detecting the iptables backend: %w", err))
	}
	fmt.Fprintf(stderr, "backend: %s %s\n", b.Name, b.Version)
	return exitOK
}
