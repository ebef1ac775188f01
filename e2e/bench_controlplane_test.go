//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/istio-sidecar/istio-sidecar/e2e/harness"
)

const (
	// istiodHTTPPort is istiod's static plain HTTP port, where its /ready (Nomad's check) is.
	istiodHTTPPort = 8080
	benchReadyPoll = 100 * time.Millisecond
	benchCertPoll  = 50 * time.Millisecond
	benchCSRJob    = "bench-csr"
)

// controlPlaneProcs are the control plane's processes the benchmark weighs, by executable name.
var controlPlaneProcs = []string{"etcd", "kube-apiserver", "pilot-discovery", "istio-sidecar-controller"}

// BenchmarkControlPlane runs example/control-plane.md once, as TestControlPlane does, and prints what the
// control plane costs on this node. Figures are printed, never asserted:
//
//   - the first control-plane job (etcd) registered → istiod's /ready answering, and istiod's own job
//     registered → /ready (polled from outside every benchReadyPoll);
//   - RSS of etcd, kube-apiserver, istiod (pilot-discovery) and the controller, idle with one meshed group;
//   - CSR latency: a fresh meshed group's pilot-agent started (the driver's event) → its proxy holding a
//     workload certificate from istiod (config_dump polled every benchCertPoll), and pilot-agent's own
//     measure of its CSRs to istiod (its outgoing_latency / num_outgoing_requests, request_type="csr").
//
// There is no baseline to divide by: nothing else in the run plays a control plane. `make bench` runs it with
// -benchtime 1x; it runs once whatever b.N is, as the control plane takes minutes to start.
func BenchmarkControlPlane(b *testing.B) {
	harness.RequireBridgeNetworking(b)
	ctx, cancel := context.WithCancel(b.Context())
	defer cancel()
	ready := watchReady(ctx, fmt.Sprintf("http://%s/ready", net.JoinHostPort(defaultRouteIP(b), strconv.Itoa(istiodHTTPPort))))
	cp := startControlPlane(b)
	var readyAt time.Time
	select {
	case readyAt = <-ready:
	case <-time.After(certTimeout):
		b.Fatalf("istiod's /ready never answered 200 from outside")
	}
	etcdSubmit, istiodSubmit := cp.submitTime(b, "etcd"), cp.submitTime(b, istiodJob)
	rss := cp.controlPlaneRSS(b)
	toCert := cp.csrToCert(b)
	csrMS, csrs := pilotAgentCSRLatency(b, cp.meshedAlloc.ID)

	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(os.Stdout, "\nistio-sidecar control-plane bench: Nomad %s, the guide's jobs (%s)\n", harness.NomadVersion, harness.GuideFile)
	fmt.Fprintf(w, "etcd job registered → istiod /ready (s)\t%.1f\t\n", readyAt.Sub(etcdSubmit).Seconds())
	fmt.Fprintf(w, "istiod job registered → istiod /ready (s)\t%.1f\t\n", readyAt.Sub(istiodSubmit).Seconds())
	for _, name := range controlPlaneProcs {
		fmt.Fprintf(w, "%s RSS (MiB)\t%.1f\t\n", name, float64(rss[name])/(1<<20))
	}
	fmt.Fprintf(w, "pilot-agent started → proxy holds its certificate (ms)\t%.0f\t\n", float64(toCert.Milliseconds()))
	fmt.Fprintf(w, "pilot-agent's CSR to istiod, mean of %d (ms)\t%.1f\t\n", csrs, csrMS)
	w.Flush()
	fmt.Println()
	b.ReportMetric(readyAt.Sub(istiodSubmit).Seconds(), "s/istiod-registered-to-ready")
	b.ReportMetric(readyAt.Sub(etcdSubmit).Seconds(), "s/etcd-registered-to-istiod-ready")
	for _, name := range controlPlaneProcs {
		b.ReportMetric(float64(rss[name])/(1<<20), "MiB/"+name)
	}
	b.ReportMetric(float64(toCert.Milliseconds()), "ms/start-to-certificate")
	b.ReportMetric(csrMS, "ms/csr")
}

// watchReady polls url until it answers 200 and sends the moment it first did.
func watchReady(ctx context.Context, url string) <-chan time.Time {
	out := make(chan time.Time, 1)
	client := &http.Client{Timeout: time.Second}
	go func() {
		tick := time.NewTicker(benchReadyPoll)
		defer tick.Stop()
		for {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if resp, err := client.Do(req); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					out <- time.Now()
					return
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return out
}

// submitTime is when the control-plane job's current version was registered.
func (cp *controlPlane) submitTime(b *testing.B, job string) time.Time {
	j, _, err := cp.agent.Client.Jobs().Info(job, &api.QueryOptions{Namespace: cpNamespace})
	if err != nil || j.SubmitTime == nil {
		b.Fatalf("job %s: %v", job, err)
	}
	return time.Unix(0, *j.SubmitTime)
}

// controlPlaneRSS is the resident memory of each control-plane process of this agent, by executable name. They
// are found below the agent's executors: etcd runs under exec, in a chroot and mount namespace of its own,
// where nothing of it names the agent's directory as seen from here.
func (cp *controlPlane) controlPlaneRSS(b *testing.B) map[string]uint64 {
	execs, err := cp.agent.Executors()
	if err != nil {
		b.Fatal(err)
	}
	var pids []int
	for _, e := range execs {
		pids = append(pids, descendants(e.PID)...)
	}
	out := map[string]uint64{}
	for _, name := range controlPlaneProcs {
		for _, pid := range pids {
			if exeName(pid) != name {
				continue
			}
			m, err := harness.ProcMem(pid)
			if err != nil {
				b.Fatalf("%s (%d): %v", name, pid, err)
			}
			out[name] += m.RSS
		}
		if out[name] == 0 {
			b.Fatalf("no %s process below this agent's executors", name)
		}
	}
	return out
}

// descendants are the live processes below pid.
func descendants(pid int) []int {
	var out []int
	for _, c := range harness.ChildPIDs(pid) {
		out = append(out, c)
		out = append(out, descendants(c)...)
	}
	return out
}

// exeName is the base name of the process's argv[0].
func exeName(pid int) string {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	if err != nil {
		return ""
	}
	argv0, _, _ := strings.Cut(string(b), "\x00")
	return filepath.Base(argv0)
}

// csrToCert registers another meshed bridge-mode group and measures from its pilot-agent's start (the driver's
// "Proxy started" event) to the moment its proxy first holds a workload certificate.
func (cp *controlPlane) csrToCert(b *testing.B) time.Duration {
	job := cp.agent.ParseJobVars(b, harness.ExampleFile(b, bridgeExample), benchCSRJob,
		harness.Vars{"testapp_path": testappBin(b)})
	cp.agent.Register(b, job)
	var allocID string
	var got time.Time
	err := harness.Poll(certTimeout, benchCertPoll, "the new group's proxy holding a certificate", func() (bool, string) {
		if allocID == "" {
			stubs, _, err := cp.agent.Client.Jobs().Allocations(benchCSRJob, false, nil)
			if err != nil || len(stubs) == 0 {
				return false, fmt.Sprintf("no allocation yet (%v)", err)
			}
			allocID = stubs[0].ID
		}
		if _, err := harness.ProxyCertChain(allocID); err != nil {
			return false, err.Error()
		}
		got = time.Now()
		return true, ""
	})
	if err != nil {
		b.Fatal(err)
	}
	started, ok := harness.FirstEvent(cp.agent.TimedEvents(b, allocID, proxyTask), "", "Proxy started")
	if !ok {
		b.Fatalf("no \"Proxy started\" event: %v", cp.agent.TaskEvents(b, allocID, proxyTask))
	}
	return got.Sub(started.Time)
}

// pilotAgentCSRLatency is pilot-agent's own account of its CSRs to istiod, from its metrics on the status port:
// the mean in milliseconds and how many there were.
func pilotAgentCSRLatency(b *testing.B, allocID string) (float64, int) {
	out, err := harness.InNetns(harness.NetnsPath(allocID), "curl", "-sf", "--max-time", "3",
		"http://127.0.0.1:15020/stats/prometheus")
	if err != nil {
		b.Fatalf("pilot-agent's metrics: %v", err)
	}
	var sumMS, n float64
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, `request_type="csr"`) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			continue
		}
		switch {
		case strings.Contains(f[0], "outgoing_latency"):
			sumMS += v
		case strings.Contains(f[0], "num_outgoing_requests"):
			n += v
		}
	}
	if n == 0 {
		b.Fatalf("pilot-agent's metrics count no CSR:\n%s", out)
	}
	return sumMS / n, int(n)
}
