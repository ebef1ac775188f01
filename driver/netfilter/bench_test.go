package netfilter

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-iptables/iptables"

	"github.com/istio-sidecar/istio-sidecar/driver/rules"
)

// BenchmarkApplyCleanup compares, for 1, 100 and 1000 excluded CIDRs (IPv4, nf_tables, fresh namespace):
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
			var ours, bare, rbr time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				ours += timed(b, func() error {
					if _, err := Apply(ctx, path, rs); err != nil {
						return err
					}
					_, err := Cleanup(ctx, path, allocA)
					return err
				})
				bare += timed(b, func() error {
					if err := restore(ctx, path, be, rules.IPv4, rs.Payload(rules.IPv4)); err != nil {
						return err
					}
					st, err := readStateUntimed(b, path, be, rs.Owner)
					if err != nil {
						return err
					}
					return restore(ctx, path, be, rules.IPv4, rules.CleanupPayload(st))
				})
				rbr += timed(b, func() error { return ruleByRule(path, rs) })
			}
			b.StopTimer()
			per := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
			b.ReportMetric(per(ours), "ours-ms/op")
			b.ReportMetric(per(bare), "bare-restore-ms/op")
			b.ReportMetric(per(rbr), "go-iptables-ms/op")
			b.ReportMetric(float64(ours)/float64(bare), "ours/bare")
			b.ReportMetric(float64(rbr)/float64(ours), "go-iptables/ours")
		})
	}
}

func timed(b *testing.B, f func() error) time.Duration {
	start := time.Now()
	if err := f(); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// readStateUntimed reads what the bare restore installed so that it can be removed; it is not counted.
func readStateUntimed(b *testing.B, path string, be Backend, owner rules.Owner) (rules.Present, error) {
	b.StopTimer()
	defer b.StartTimer()
	st, err := readState(testCtx(b), path, be, rules.IPv4, owner)
	return st.present, err
}

// ruleByRule applies the IPv4 ruleset one iptables process per chain and rule, then removes it the same way,
// as Linkerd's and Consul's tools do.
func ruleByRule(path string, rs rules.Ruleset) error {
	fr, _ := rs.Family(rules.IPv4)
	return inNS(path, func() error {
		ipt, err := iptables.New()
		if err != nil {
			return err
		}
		for _, tr := range fr.Tables {
			for _, ch := range tr.Chains {
				if err := ipt.NewChain(string(tr.Table), string(ch)); err != nil {
					return err
				}
			}
			for _, r := range tr.Rules {
				if err := ipt.Append(string(tr.Table), string(r.Chain), specArgs(r, rs.Owner)...); err != nil {
					return err
				}
			}
		}
		for _, tr := range fr.Tables {
			for _, r := range tr.Rules {
				if !rules.IsOwnChain(r.Chain) {
					if err := ipt.Delete(string(tr.Table), string(r.Chain), specArgs(r, rs.Owner)...); err != nil {
						return err
					}
				}
			}
			for _, ch := range tr.Chains {
				if err := ipt.ClearChain(string(tr.Table), string(ch)); err != nil {
					return err
				}
			}
			for _, ch := range tr.Chains {
				if err := ipt.DeleteChain(string(tr.Table), string(ch)); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// specArgs is the rule as argv: the comment loses its restore-file quotes.
func specArgs(r rules.Rule, o rules.Owner) []string {
	return strings.Fields(strings.ReplaceAll(r.Spec(o.Tag()), `"`, ""))
}
