package netfilter

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
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
	if _, err := exec.LookPath(prefix); err != nil {
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

// detector caches one detection per namespace (path plus inode, so a recreated namespace is detected again),
// and whether the namespace is known to hold none of anyone's tagged rules (see fresh.go).
type detector struct {
	mu    sync.Mutex
	cache map[string]*nsInfo
}

type nsInfo struct {
	backend Backend
	// clean: the last full read of the namespace (detection, or a Cleanup that read every backend and family
	// and removed all it found) saw no tagged rule of any allocation, and no Apply has run since.
	clean bool
}

var defaultDetector = &detector{cache: map[string]*nsInfo{}}

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
	info, err := defaultDetector.detect(ctx, nsPath)
	if err != nil {
		return Backend{}, err
	}
	return info.backend, nil
}

func (d *detector) detect(ctx context.Context, nsPath string) (nsInfo, error) {
	key := nsKey(nsPath)
	d.mu.Lock()
	defer d.mu.Unlock()
	if info, ok := d.cache[key]; ok {
		return *info, nil
	}
	b, clean, err := detectUncached(ctx, nsPath)
	if err != nil {
		return nsInfo{}, err
	}
	if err := checkNat(ctx, nsPath, b); err != nil {
		return nsInfo{}, err
	}
	d.cache[key] = &nsInfo{backend: b, clean: clean}
	return *d.cache[key], nil
}

// takeClean reports whether the namespace is known to be clean and forgets it: the caller is about to apply.
func (d *detector) takeClean(nsPath string) bool {
	key := nsKey(nsPath)
	d.mu.Lock()
	defer d.mu.Unlock()
	info, ok := d.cache[key]
	if !ok {
		return false
	}
	clean := info.clean
	info.clean = false
	return clean
}

// markClean records a full read that found the namespace holding no tagged rule (after what it removed).
func (d *detector) markClean(nsPath string) {
	key := nsKey(nsPath)
	d.mu.Lock()
	defer d.mu.Unlock()
	if info, ok := d.cache[key]; ok {
		info.clean = true
	}
}

func detectUncached(ctx context.Context, nsPath string) (b Backend, clean bool, err error) {
	if nsPath != "" {
		if _, err := os.Stat(nsPath); err != nil {
			return Backend{}, false, fmt.Errorf("%w: %s", ErrNamespaceGone, nsPath)
		}
	}
	installed := installedBackends(ctx)
	if len(installed) == 0 {
		return Backend{}, false, fmt.Errorf("%w: neither iptables-nft nor iptables-legacy is installed", ErrMissingSupport)
	}
	// What the system's `iptables` is decides only for a namespace without rules, but is asked alongside the
	// saves rather than after them: a new namespace is detected on every allocation's start.
	sysLegacy := make(chan bool, 1)
	go func() {
		out, err := run(ctx, "", "", "iptables", "--version")
		sysLegacy <- err == nil && strings.Contains(out, "legacy")
	}()
	counts, ok := countRules(ctx, nsPath, installed...)
	legacyDefault := <-sysLegacy
	clean = ok && counts.tagged == 0
	if len(installed) == 1 {
		return installed[0], clean, nil
	}
	nft, legacy := installed[0], installed[1]
	switch {
	case counts.rules[NFTables] > 0:
		return nft, clean, nil
	case counts.rules[Legacy] > 0, legacyDefault:
		return legacy, clean, nil
	}
	return nft, clean, nil
}

// ruleCounts is what detection reads: each backend's rules, and how many of all of them carry our tag.
type ruleCounts struct {
	rules  map[BackendName]int
	tagged int
}

// countRules counts each backend's rules in the namespace, every save at once. ok is false when a save failed.
func countRules(ctx context.Context, nsPath string, backends ...Backend) (ruleCounts, bool) {
	c, ok := ruleCounts{rules: map[BackendName]int{}}, true
	for _, s := range runSaves(ctx, nsPath, savesFor(nsPath, backends...)) {
		if s.err != nil {
			ok = false
			continue
		}
		c.rules[s.backend.Name] += strings.Count(s.out, "\n-A ")
		c.tagged += strings.Count(s.out, rules.TagPrefix)
	}
	return c, ok
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
