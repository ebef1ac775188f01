package netfilter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"

	"github.com/istio-sidecar/istio-sidecar/driver/rules"
)

// familyState is one family's saved state and what the owner has in it.
type familyState struct {
	saved   rules.Saved
	present rules.Present
}

func readState(ctx context.Context, nsPath string, b Backend, f rules.Family, owner rules.Owner) (familyState, error) {
	out, err := run(ctx, nsPath, "", b.saveArgv(f)...)
	return parseState(f, out, err, owner)
}

// parseState turns one save's outcome into the family's state.
func parseState(f rules.Family, out string, err error, owner rules.Owner) (familyState, error) {
	if err != nil {
		return familyState{}, fmt.Errorf("%s save: %w", f, err)
	}
	saved, err := rules.ParseSave(out)
	if err != nil {
		return familyState{}, fmt.Errorf("%s save: %w", f, err)
	}
	return familyState{saved: saved, present: saved.Present(owner)}, nil
}

// stateKey names one iptables-save: a backend's tool for one family.
type stateKey struct {
	backend Backend
	family  rules.Family
}

// saveOutput is what one iptables-save printed.
type saveOutput struct {
	stateKey
	out string
	err error
}

// runSaves runs the saves at once and returns their outputs in the order asked. Each save is its own process
// reading its own tables, so nothing orders them; run one after another they were most of what Apply and
// Cleanup cost beyond the restore itself.
func runSaves(ctx context.Context, nsPath string, keys []stateKey) []saveOutput {
	outs := make([]saveOutput, len(keys))
	var wg sync.WaitGroup
	for i, k := range keys {
		wg.Go(func() {
			out, err := run(ctx, nsPath, "", k.backend.saveArgv(k.family)...)
			outs[i] = saveOutput{stateKey: k, out: out, err: err}
		})
	}
	wg.Wait()
	return outs
}

// stateRead is the outcome of one iptables-save, parsed.
type stateRead struct {
	stateKey
	state familyState
	err   error
}

// readStates is runSaves, parsed for owner.
func readStates(ctx context.Context, nsPath string, owner rules.Owner, keys []stateKey) []stateRead {
	saves := runSaves(ctx, nsPath, keys)
	reads := make([]stateRead, len(saves))
	for i, s := range saves {
		st, err := parseState(s.family, s.out, s.err, owner)
		reads[i] = stateRead{stateKey: s.stateKey, state: st, err: err}
	}
	return reads
}

// legacyInUse says whether the legacy backend has any table in the namespace for the family. x_tables
// instantiates a table in a namespace only when something there first uses it, and lists those in
// /proc/net/ip{,6}_tables_names as seen from a thread inside; an empty or absent list means iptables-legacy-save
// would print nothing, so its process can be spared. Anything unexpected answers true: the save then decides.
func legacyInUse(nsPath string, f rules.Family) bool {
	name := "/proc/thread-self/net/ip_tables_names"
	if f == rules.IPv6 {
		name = "/proc/thread-self/net/ip6_tables_names"
	}
	inUse := true
	_ = inNS(nsPath, func() error {
		if _, err := os.Stat("/proc/thread-self/net"); err != nil {
			return nil // no per-thread view (kernels before 3.17): cannot tell, so read
		}
		data, err := os.ReadFile(name)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			inUse = false
		case err == nil:
			inUse = len(bytes.TrimSpace(data)) > 0
		}
		return nil
	})
	return inUse
}

// savesFor lists the saves worth running in the namespace: both families of nf_tables, and those of legacy that
// have tables there.
func savesFor(nsPath string, backends ...Backend) []stateKey {
	var keys []stateKey
	for _, b := range backends {
		for _, f := range []rules.Family{rules.IPv4, rules.IPv6} {
			if b.Name == Legacy && !legacyInUse(nsPath, f) {
				continue
			}
			keys = append(keys, stateKey{b, f})
		}
	}
	return keys
}
