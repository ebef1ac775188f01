//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/istio-sidecar/istio-sidecar/e2e/harness"
)

const (
	propagationRounds = 20
	propagationPoll   = 50 * time.Millisecond
	propagationReady  = 20 * time.Millisecond // the outside probe of B's readiness
	endpointJobspec   = "bench-endpoint.hcl"
	benchJobA         = "bench-a"
	benchJobB         = "bench-b"
)

// propagationResult is the samples of proxy ready → endpoint in A's config dump, and how long a read took.
type propagationResult struct {
	samples  []time.Duration
	p50, p95 float64 // ms
	readMS   float64 // median of one config dump read, ms
}

// propagation runs job A once, then replaces job B's allocation propagationRounds times (a destructive update
// each time: the old one stops while the new one starts) and times each new allocation from its proxy ready to
// its node address and mapped port in the endpoints A's proxy holds for B's cluster.
func (r *regBench) propagation() propagationResult {
	b := r.b
	a := r.runEndpointJob(benchJobA)
	ready := r.agent.WatchReady(b.Context(), benchJobB, propagationReady)
	job := r.endpointJob(benchJobB)
	var res propagationResult
	var reads []float64
	seen := map[string]bool{}
	for i := range propagationRounds {
		job.Meta = map[string]string{"round": strconv.Itoa(i)}
		r.agent.Register(b, job)
		alloc := r.newAlloc(benchJobB, seen)
		ctx, cancel := context.WithTimeout(b.Context(), meshTimeout)
		readyAt, ok := ready.Wait(ctx, []string{alloc.ID})[alloc.ID]
		cancel()
		if !ok {
			b.Fatalf("round %d: the proxy of %s never answered ready; events:\n%s", i, alloc.ID,
				strings.Join(r.agent.TaskEvents(b, alloc.ID, proxyTask), "\n"))
		}
		ep := netip.AddrPortFrom(r.nodeIP, uint16(hostPort(b, alloc, "http")))
		res.samples = append(res.samples, r.waitEndpoint(a.ID, benchJobB, ep, &reads).Sub(readyAt))
	}
	v := make([]float64, len(res.samples))
	for i, d := range res.samples {
		v[i] = ms(d)
	}
	res.p50, res.p95, res.readMS = percentile(v, 50), percentile(v, 95), percentile(reads, 50)
	r.agent.StopJob(b, benchJobB)
	r.agent.StopJob(b, benchJobA)
	return res
}

func (r *regBench) endpointJob(id string) *api.Job {
	return r.agent.ParseJobVars(r.b, endpointJobspec, id, harness.Vars{"testapp_path": testappBin(r.b), "service": id})
}

// runEndpointJob runs the meshed job once its group's Variable (from the controller) lets its proxy start.
func (r *regBench) runEndpointJob(id string) *api.Allocation {
	r.agent.Register(r.b, r.endpointJob(id))
	alloc := r.agent.WaitAlloc(r.b, id, api.AllocClientStatusRunning)
	r.agent.WaitTaskState(r.b, alloc.ID, proxyTask, harness.TaskStateRunning)
	return alloc
}

// newAlloc waits for an allocation of the job not seen before that is meant to run, and returns it.
func (r *regBench) newAlloc(jobID string, seen map[string]bool) *api.Allocation {
	b := r.b
	var id string
	err := harness.Poll(meshTimeout, propagationReady, "a new allocation of "+jobID, func() (bool, string) {
		stubs, _, err := r.agent.Client.Jobs().Allocations(jobID, false, nil)
		if err != nil {
			return false, err.Error()
		}
		for _, s := range stubs {
			if !seen[s.ID] && s.DesiredStatus == api.AllocDesiredStatusRun {
				id = s.ID
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d allocations, none new", len(stubs))
	})
	if err != nil {
		b.Fatal(err)
	}
	seen[id] = true
	alloc, _, err := r.agent.Client.Allocations().Info(id, nil)
	if err != nil {
		b.Fatal(err)
	}
	return alloc
}

// waitEndpoint polls A's config dump until ep is among the endpoints of the service's outbound cluster, and
// returns when the read that showed it returned. Each read's duration goes to reads.
func (r *regBench) waitEndpoint(allocA, service string, ep netip.AddrPort, reads *[]float64) time.Time {
	// The controller's default -domain.
	suffix := "||" + service + ".default.svc.cluster.local"
	var at time.Time
	err := harness.Poll(meshTimeout, propagationPoll, fmt.Sprintf("%s among %s's endpoints in A's config dump", ep, service), func() (bool, string) {
		start := time.Now()
		d, err := harness.FetchConfigDump(allocA)
		if err != nil {
			return false, err.Error()
		}
		*reads = append(*reads, ms(time.Since(start)))
		var seen []string
		for _, c := range d.ClusterNames() {
			if !strings.HasPrefix(c, "outbound|") || !strings.HasSuffix(c, suffix) {
				continue
			}
			eps := d.EndpointAddrs(c)
			if slices.Contains(eps, ep) {
				at = time.Now()
				return true, ""
			}
			seen = append(seen, fmt.Sprintf("%s: %v", c, eps))
		}
		return false, fmt.Sprintf("clusters of %s: %v", service, seen)
	})
	if err != nil {
		r.b.Fatal(err)
	}
	return at
}

// percentile is the nearest-rank p-th percentile of v (0 when empty).
func percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	sort.Float64s(s)
	i := int(float64(len(s))*p/100+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}
