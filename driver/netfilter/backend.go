package netfilter

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"syscall"

	"github.com/istio-sidecar/istio-sidecar/driver/rules"
)

// BackendName is the iptables flavour: the nf_tables-based one or the legacy x_tables one.
type BackendName string

const (
	NFTables BackendName = "nf_tables"
	Legacy   BackendName = "legacy"
)

// Backend is a detected iptables flavour with the exact binaries to run.
type Backend struct {
	Name    BackendName
	Version string // e.g. "v1.8.9"
	prefix  string // "iptables-nft" or "iptables-legacy" (ip6tables-... for IPv6)
}

// ErrMissingSupport means the namespace or host lacks a table, match or target the ruleset needs.
var ErrMissingSupport = errors.New("missing netfilter support")

func (b Backend) bin(f rules.Family, suffix string) string {
	p := b.prefix
	if f == rules.IPv6 {
		p = "ip6" + strings.TrimPrefix(p, "ip")
	}
	return p + suffix
}

// saveArgv and restoreArgv build argv; legacy waits for the global xtables lock instead of failing on it.
func (b Backend) saveArgv(f rules.Family) []string { return []string{b.bin(f, "-save")} }

func (b Backend) restoreArgv(f rules.Family) []string {
	argv := []string{b.bin(f, "-restore"), "--noflush"}
	if b.Name == Legacy {
		argv = append(argv, "--wait=10")
	}
	return argv
}

var versionPattern = regexp.MustCompile(`v[0-9]+\.[0-9]+(\.[0-9]+)?`)

// probed remembers the backends found: every Cleanup looks in both, and probing runs a process each time.
// Only a success is remembered, so a backend installed while the plugin runs is found at its next probe.
var probed sync.Map // BackendName → Backend

func probeBackend(ctx context.Context, name BackendName) (Backend, bool) {
	if b, ok := probed.Load(name); ok {
		return b.(Backend), true
	}
	b, ok := probeBackendUncached(ctx, name)
	if ok {
		probed.Store(name, b)
	}
	return b, ok
}

func probeBackendUncached(ctx context.Context, name BackendName) (Backend, bool) {
	prefix := "iptables-nft"
	if name == Legacy {
		prefix = "iptables-legacy"
	}
	if _, err := lookTool(prefix); err != nil {
		return Backend{}, false
	}
	out, err := run(ctx, "", "", prefix, "--version")
	if err != nil {
		return Backend{}, false
	}
	return Backend{Name: name, Version: versionPattern.FindString(out), prefix: prefix}, true
}

// installedBackends lists the iptables flavours present on the host, nf_tables first.
func installedBackends(ctx context.Context) []Backend {
	var out []Backend
	for _, name := range []BackendName{NFTables, Legacy} {
		if b, ok := probeBackend(ctx, name); ok {
			out = append(out, b)
		}
	}
	return out
}

// detector caches one detection per namespace (path plus inode, so a recreated namespace is detected again).
type detector struct {
	mu    sync.Mutex
	cache map[string]Backend
}

var defaultDetector = &detector{cache: map[string]Backend{}}

func nsKey(nsPath string) string {
	if nsPath == "" {
		nsPath = "/proc/self/ns/net"
	}
	var st syscall.Stat_t
	if err := syscall.Stat(nsPath, &st); err != nil {
		return nsPath
	}
	return fmt.Sprintf("%s@%d:%d", nsPath, st.Dev, st.Ino)
}

// Detect picks the backend for a namespace as Istio and Kuma do: the flavour that already holds rules there
// wins (legacy only when it alone does); otherwise the flavour the system's `iptables` is.
func Detect(ctx context.Context, nsPath string) (Backend, error) {
	return defaultDetector.detect(ctx, nsPath)
}

func (d *detector) detect(ctx context.Context, nsPath string) (Backend, error) {
	key := nsKey(nsPath)
	d.mu.Lock()
	defer d.mu.Unlock()
	if b, ok := d.cache[key]; ok {
		return b, nil
	}
	b, err := detectUncached(ctx, nsPath)
	if err != nil {
		return Backend{}, err
	}
	if err := checkNat(ctx, nsPath, b); err != nil {
		return Backend{}, err
	}
	d.cache[key] = b
	return b, nil
}

func detectUncached(ctx context.Context, nsPath string) (Backend, error) {
	if nsPath != "" {
		if _, err := os.Stat(nsPath); err != nil {
			return Backend{}, fmt.Errorf("%w: %s", ErrNamespaceGone, nsPath)
		}
	}
	installed := installedBackends(ctx)
	if len(installed) == 0 {
		return Backend{}, fmt.Errorf("%w: neither iptables-nft nor iptables-legacy is installed", ErrMissingSupport)
	}
	if len(installed) == 1 {
		return installed[0], nil
	}
	// What the system's `iptables` is decides only for a namespace without rules, but is asked alongside the
	// saves rather than after them: a new namespace is detected on every allocation's start.
	sysLegacy := make(chan bool, 1)
	go func() {
		out, err := run(ctx, "", "", "iptables", "--version")
		sysLegacy <- err == nil && strings.Contains(out, "legacy")
	}()
	counts := countRules(ctx, nsPath, installed...)
	legacyDefault := <-sysLegacy
	nft, legacy := installed[0], installed[1]
	switch {
	case counts[NFTables] > 0:
		return nft, nil
	case counts[Legacy] > 0, legacyDefault:
		return legacy, nil
	}
	return nft, nil
}

// countRules counts each backend's rules in the namespace, every save at once; a save that fails counts none.
func countRules(ctx context.Context, nsPath string, backends ...Backend) map[BackendName]int {
	counts := map[BackendName]int{}
	for _, s := range runSaves(ctx, nsPath, savesFor(nsPath, backends...)) {
		if s.err == nil {
			counts[s.backend.Name] += strings.Count(s.out, "\n-A ")
		}
	}
	return counts
}

// checkNat fails early, with a clear message, when the nat table cannot be used in the namespace.
func checkNat(ctx context.Context, nsPath string, b Backend) error {
	argv := []string{b.bin(rules.IPv4, ""), "-t", "nat", "-S", "OUTPUT"}
	if b.Name == Legacy {
		argv = append(argv, "-w", "10")
	}
	if _, err := run(ctx, nsPath, "", argv...); err != nil {
		return fmt.Errorf("%w: nat table unavailable (%s, kernel module iptable_nat/nft_chain_nat?): %w", ErrMissingSupport, b.Name, err)
	}
	return nil
}

// missingPieces maps iptables' complaints to the piece the operator must install.
var missingPieces = []struct {
	pattern *regexp.Regexp
	what    string
}{
	{regexp.MustCompile("Couldn't load match `([a-z0-9_]+)'"), "match module %s (xt_%s)"},
	{regexp.MustCompile("Couldn't load target `([A-Za-z0-9_]+)'"), "target %s (xt_%s)"},
	{regexp.MustCompile(`Extension ([A-Za-z0-9_]+) revision \d+ not supported`), "extension %s (xt_%s)"},
	{regexp.MustCompile("[Tt]able `?([a-z]+)'? does not exist"), "table %s (iptable_%s)"},
}

// diagnose wraps a restore failure in ErrMissingSupport when stderr names a missing module.
func diagnose(err error) error {
	var ee *ExecError
	if !errors.As(err, &ee) {
		return err
	}
	for _, m := range missingPieces {
		if g := m.pattern.FindStringSubmatch(ee.Stderr); g != nil {
			what := fmt.Sprintf(m.what, g[1], strings.ToLower(g[1]))
			return fmt.Errorf("%w: %s: %w", ErrMissingSupport, what, err)
		}
	}
	return err
}
