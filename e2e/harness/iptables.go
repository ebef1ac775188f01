package harness

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
)

// RuleTag starts the comment on every rule the driver writes: "istio-sidecar:alloc=<allocID>".
const RuleTag = "istio-sidecar:alloc="

// Rules is a namespace's netfilter state as iptables-save shows it, one entry per table line prefixed with the
// tool and table, such as "iptables-save nat: -A OUTPUT ... -j ISTIO_OUTPUT". Counters and comment lines are
// dropped, and so is every built-in chain at policy ACCEPT: that is the kernel's default, and such chains appear
// as soon as anything merely creates their table (Nomad's CNI plugins create the host's filter and nat tables on
// a fresh machine), so a host that had no tables and one that has them empty compare equal.
type Rules []string

// saveTools are the dumps a snapshot covers: both families, and the legacy backend when it holds tables (the
// driver picks legacy where legacy already has rules).
func saveTools() []string {
	tools := []string{"iptables-save", "ip6tables-save"}
	for _, legacy := range []struct{ tool, proc string }{
		{"iptables-legacy-save", "/proc/net/ip_tables_names"},
		{"ip6tables-legacy-save", "/proc/net/ip6_tables_names"},
	} {
		if data, err := os.ReadFile(legacy.proc); err == nil && len(strings.TrimSpace(string(data))) > 0 {
			if _, err := exec.LookPath(legacy.tool); err == nil {
				tools = append(tools, legacy.tool)
			}
		}
	}
	return tools
}

// SnapshotRules returns the netfilter state of a network namespace ("" for the host's).
func SnapshotRules(t T, nsPath string) Rules {
	t.Helper()
	r, err := snapshotRules(nsPath)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return r
}

func snapshotRules(nsPath string) (Rules, error) {
	var all Rules
	for _, tool := range saveTools() {
		out, err := InNetns(nsPath, tool)
		if err != nil {
			return nil, fmt.Errorf("snapshot of %s: %w", nsName(nsPath), err)
		}
		all = append(all, normaliseSave(tool, out)...)
	}
	return all, nil
}

var counters = regexp.MustCompile(` \[\d+:\d+\]$`)

func normaliseSave(tool, out string) Rules {
	var rules Rules
	var table string
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || line == "COMMIT":
		case strings.HasPrefix(line, "*"):
			table = line[1:]
		case strings.HasPrefix(line, ":"):
			line = counters.ReplaceAllString(line, "")
			// A built-in chain shows its policy, a user chain "-".
			if f := strings.Fields(line); len(f) == 2 && f[1] == "ACCEPT" {
				continue
			}
			rules = append(rules, tool+" "+table+": "+line)
		default:
			rules = append(rules, tool+" "+table+": "+line)
		}
	}
	return rules
}

// Tagged returns the entries that are the driver's: rules carrying RuleTag and ISTIO_ chains.
func (r Rules) Tagged() []string {
	var out []string
	for _, l := range r {
		if strings.Contains(l, RuleTag) || strings.Contains(l, ":ISTIO_") || strings.Contains(l, " ISTIO_") {
			out = append(out, l)
		}
	}
	return out
}

// Diff describes how after differs from r, as "+ line" and "- line" entries; nil when they are equal, order
// included.
func (r Rules) Diff(after Rules) []string {
	if slices.Equal(r, after) {
		return nil
	}
	var d []string
	for _, l := range after {
		if !slices.Contains(r, l) {
			d = append(d, "+ "+l)
		}
	}
	for _, l := range r {
		if !slices.Contains(after, l) {
			d = append(d, "- "+l)
		}
	}
	if d == nil {
		d = []string{"(same rules, different order)"}
	}
	return d
}

// RemoveTaggedRules deletes every rule carrying RuleTag, and the ISTIO_ chains no remaining rule refers to, from
// a namespace ("" for the host's), and returns how many rules went. It is the host-mode scenarios' last line of
// defence: it runs in t.Cleanup whatever the driver did, so a failed scenario never leaves the host captured.
// Only the tables that hold tagged rules are rewritten (iptables-restore replaces the tables it is given).
func RemoveTaggedRules(nsPath string) (int, error) {
	removed := 0
	for _, tool := range saveTools() {
		out, err := InNetns(nsPath, tool)
		if err != nil {
			return removed, err
		}
		payload, n := withoutTagged(out)
		if n == 0 {
			continue
		}
		restoreTool := strings.Replace(tool, "-save", "-restore", 1)
		argv := []string{restoreTool}
		if nsPath != "" {
			argv = append([]string{"nsenter", "--net=" + nsPath, "--"}, argv...)
		}
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Stdin = strings.NewReader(payload)
		if b, err := cmd.CombinedOutput(); err != nil {
			return removed, fmt.Errorf("%s: %w: %s\npayload:\n%s", strings.Join(argv, " "), err, b, payload)
		}
		removed += n
	}
	return removed, nil
}

// withoutTagged returns the tables of an iptables-save output that hold tagged rules, without those rules and
// without the ISTIO_ chains left unreferenced, and the number of rules dropped.
func withoutTagged(save string) (string, int) {
	type table struct {
		lines  []string
		tagged int
	}
	var tables []*table
	var cur *table
	for _, line := range strings.Split(save, "\n") {
		switch {
		case strings.HasPrefix(line, "*"):
			cur = &table{lines: []string{line}}
			tables = append(tables, cur)
		case cur == nil || strings.HasPrefix(line, "#") || line == "":
		case strings.HasPrefix(line, "-A ") && strings.Contains(line, RuleTag):
			cur.tagged++
		default:
			cur.lines = append(cur.lines, line)
		}
	}
	var b strings.Builder
	total := 0
	for _, tb := range tables {
		if tb.tagged == 0 {
			continue
		}
		total += tb.tagged
		for _, line := range tb.lines {
			if name, ok := strings.CutPrefix(line, ":"); ok && strings.HasPrefix(name, "ISTIO_") {
				chain := strings.Fields(name)[0]
				if !referenced(tb.lines, chain) {
					continue
				}
			}
			b.WriteString(line + "\n")
		}
	}
	return b.String(), total
}

func referenced(lines []string, chain string) bool {
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) < 2 || f[0] != "-A" {
			continue
		}
		if f[1] == chain {
			return true
		}
		for i := 2; i+1 < len(f); i++ {
			if (f[i] == "-j" || f[i] == "-g") && f[i+1] == chain {
				return true
			}
		}
	}
	return false
}

func nsName(nsPath string) string {
	if nsPath == "" {
		return "the host network namespace"
	}
	return "network namespace " + nsPath
}

// nomadNetworking marks what Nomad's bridge networking (its CNI plugins) writes into the host namespace: a
// MASQUERADE chain per allocation, port mappings, and the forward chains it creates once and keeps.
var nomadNetworking = regexp.MustCompile(`(^|[ :])(CNI-|NOMAD-ADMIN)|name: \\"nomad\\"`)

// WithoutNomadNetworking drops the host rules of Nomad's bridge networking. Every agent on the host (other tests,
// a demo) adds and removes them with its allocations, so they cannot be compared across a test; a test checks its
// own allocations' entries with Mentioning instead.
func (r Rules) WithoutNomadNetworking() Rules {
	var out Rules
	for _, l := range r {
		if !nomadNetworking.MatchString(l) {
			out = append(out, l)
		}
	}
	return out
}

// Mentioning returns the entries that contain s, such as an allocation ID.
func (r Rules) Mentioning(s string) []string {
	var out []string
	for _, l := range r {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return out
}
