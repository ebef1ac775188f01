package netfilter

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-iptables/iptables"

	"github.com/istio-sidecar/istio-sidecar/driver/rules"
)

// BenchmarkApplyCleanup compares, as medians per operation, for 1, 100 and 1000 excluded CIDRs (IPv4, nf_tables, fresh namespace):
// our Apply+Cleanup (save, diff, one restore each), one bare iptables-restore of the same
// payload plus one of the cleanup payload, and rule-by-rule application and removal with go-iptables.
func BenchmarkApplyCleanup(b *testing.B) {
	requireRoot(b)
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("cidrs=%d", n), func(b *testing.B) {
			cidrs := make([]string, n)
			for i := range cidrs {
				cidrs[i] = fmt.Sprintf("10.%d.%d.0/24", 100+i/256, i%256)
			}
			rs := build(b, rules.Spec{ExcludeOutboundIPRanges: cidrs}, rules.Env{}, allocA)
			_, path := newNS(b)
			ctx := testCtx(b)
			be, err := Detect(ctx, path)
			mustf(b, err, "detect")
			payload := rs.Payload(rules.IPv4)
			tables := payloadTables(payload)
			cleanup := bareCleanupPayload(b, path, be, rs)
			var ours, bare, rbr []time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for range pairRuns {
					ours = append(ours, timed(b, func() error {
						if _, err := Apply(ctx, path, rs); err != nil {
							return err
						}
						_, err := Cleanup(ctx, path, allocA)
						return err
					}))
					bare = append(bare, timed(b, func() error {
						if err := restore(ctx, path, be, rules.IPv4, payload); err != nil {
							return err
						}
						return restore(ctx, path, be, rules.IPv4, cleanup)
					}))
				}
				rbr = append(rbr, timed(b, func() error { return ruleByRule(path, tables) }))
			}
			b.StopTimer()
			// Medians: an nf_tables commit now and then takes several times its usual time, and one such
			// outlier in a few runs would otherwise decide the ratio.
			o, br, r := median(ours), median(bare), median(rbr)
			ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
			b.ReportMetric(ms(o), "ours-ms/op")
			b.ReportMetric(ms(br), "bare-restore-ms/op")
			b.ReportMetric(ms(r), "go-iptables-ms/op")
			b.ReportMetric(float64(o)/float64(br), "ours/bare")
			b.ReportMetric(float64(r)/float64(o), "go-iptables/ours")
		})
	}
}

// pairRuns is how many times ours and the bare restore run (alternately) per rule-by-rule run: they are fast
// and their nf_tables commits vary, so they get more samples than the slow baseline needs.
const pairRuns = 5

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func timed(b *testing.B, f func() error) time.Duration {
	start := time.Now()
	if err := f(); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// bareCleanupPayload is the payload that removes rs once a bare restore installed it, worked out before the
// clock runs: the bare baseline is two restores and no read.
func bareCleanupPayload(b *testing.B, path string, be Backend, rs rules.Ruleset) string {
	ctx := testCtx(b)
	mustf(b, restore(ctx, path, be, rules.IPv4, rs.Payload(rules.IPv4)), "bare restore")
	st, err := readState(ctx, path, be, rules.IPv4, rs.Owner)
	mustf(b, err, "read")
	p := rules.CleanupPayload(st.present)
	mustf(b, restore(ctx, path, be, rules.IPv4, p), "bare cleanup")
	return p
}

// ruleByRule applies the IPv4 payload one iptables process per chain and rule, then removes it the same way,
// as Linkerd's and Consul's tools do.
func ruleByRule(path string, tables []payloadTable) error {
	return inNS(path, func() error {
		ipt, err := iptables.New()
		if err != nil {
			return err
		}
		for _, t := range tables {
			for _, ch := range t.chains {
				if err := ipt.NewChain(t.name, ch); err != nil {
					return err
				}
			}
			for _, r := range t.rules {
				if err := ipt.Append(t.name, r[0], r[1:]...); err != nil {
					return err
				}
			}
		}
		for _, t := range tables {
			for _, r := range t.rules {
				if !slices.Contains(t.chains, r[0]) {
					if err := ipt.Delete(t.name, r[0], r[1:]...); err != nil {
						return err
					}
				}
			}
			for _, ch := range t.chains {
				if err := ipt.ClearChain(t.name, ch); err != nil {
					return err
				}
			}
			for _, ch := range t.chains {
				if err := ipt.DeleteChain(t.name, ch); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// payloadTable is one table of a restore payload: the chains it declares (ours) and each appended rule as
// its chain followed by its arguments, the comment without its restore-file quotes.
type payloadTable struct {
	name   string
	chains []string
	rules  [][]string
}

func payloadTables(payload string) []payloadTable {
	var out []payloadTable
	for _, line := range strings.Split(payload, "\n") {
		switch {
		case strings.HasPrefix(line, "*"):
			out = append(out, payloadTable{name: line[1:]})
		case strings.HasPrefix(line, ":"):
			t := &out[len(out)-1]
			t.chains = append(t.chains, strings.Fields(line[1:])[0])
		case strings.HasPrefix(line, "-A "):
			t := &out[len(out)-1]
			t.rules = append(t.rules, strings.Fields(strings.ReplaceAll(line[3:], `"`, "")))
		}
	}
	return out
}
