//go:build e2e

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/istio-sidecar/istio-sidecar/e2e/harness"
	"github.com/istio-sidecar/istio-sidecar/internal/testenv"
)

// BenchmarkSidecar prints, as a table, what a meshed bridge-mode group costs on a real Nomad v1.6.3 node, next to
// a baseline measured in the same run: the same pilot-agent (and Envoy) run by plain raw_exec, with the
// environment the driver gave it, in the same kind of group. Figures are printed, never asserted.
//
//   - Start-up, one group at a time (median of benchSamples): from the end of Nomad's prestart hooks (TRACE log)
//     to the proxy answering /healthz/ready (polled from outside every readyPoll), split into the driver's own
//     work (inspection and layout, iptables rules, executor launch) and pilot-agent/Envoy's own start-up.
//   - Memory (/proc smaps_rollup): the plugin process, and the executor of each task.
//   - benchGroups groups registered at once as one job: time until every task of every group runs and every
//     proxy is ready, failed allocations, restarts and xtables lock complaints.
//
// `make bench` runs it with -benchtime 1x; it runs once whatever b.N is, as one run takes minutes.
func BenchmarkSidecar(b *testing.B) {
	harness.RequireBridgeNetworking(b)
	r := newBenchRun(b)

	var meshed, plain []startSample
	for i := range benchSamples {
		meshed = append(meshed, r.single(meshedKind, i, i == benchSamples-1))
		plain = append(plain, r.single(r.plainKind(), i, i == benchSamples-1))
	}
	crowdMeshed := r.crowd(meshedKind)
	crowdPlain := r.crowd(r.plainKind())

	printTable(os.Stdout, r, meshed, plain, crowdMeshed, crowdPlain)
	b.ReportMetric(median(meshed, startSample.toReady), "ms/ready-istio-sidecar")
	b.ReportMetric(median(plain, startSample.toReady), "ms/ready-raw_exec")
	b.ReportMetric(crowdMeshed.allReady.Seconds(), "s/20-groups-ready")
}

const (
	benchSamples = 5
	benchGroups  = 20
	// readyPoll is how often the benchmark asks a proxy whether it is ready: finer than the driver's own 200 ms,
	// so that the proxy's start-up is measured and not the driver's polling.
	readyPoll = 20 * time.Millisecond
	// crowdPoll is the same for benchGroups proxies at once, coarser to keep 2 cores for the proxies.
	crowdPoll    = 100 * time.Millisecond
	benchTimeout = 4 * time.Minute
)

// lockTrouble matches what iptables (or the driver) says when the xtables lock is contended.
var lockTrouble = regexp.MustCompile(`(?i)xtables lock|holding the xtables|lock.*(timed out|timeout|contended)`)

// benchKind is one of the two ways the benchmark runs pilot-agent.
type benchKind struct {
	name string
	file string
	vars harness.Vars
	env  map[string]string // the sidecar task's env (baseline only)
}

var meshedKind = benchKind{name: "istio-sidecar", file: "bench-meshed.hcl"}

type benchRun struct {
	b        *testing.B
	agent    *harness.Agent
	rootCert string
	// proxyEnv is what the driver gave pilot-agent, less NOMAD_* and per-allocation values: the baseline's env.
	proxyEnv map[string]string
	mem      map[string]memSample
}

func newBenchRun(b *testing.B) *benchRun {
	cert, err := testenv.RootCert("istio-sidecar bench root")
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	certPath := filepath.Join(dir, "root-cert.pem")
	if err := os.WriteFile(certPath, cert, 0o644); err != nil {
		b.Fatal(err)
	}
	opts := harness.Options{
		PluginBin: harness.PluginBin(b),
		PluginConfig: map[string]any{
			"pilot_agent_path":        harness.PilotAgentBin(b),
			"envoy_path":              harness.EnvoyBin(b),
			"bootstrap_template_path": harness.BootstrapTemplate(b),
			"root_cert_path":          certPath,
		},
		// The task runner logs the end of each task's prestart hooks at TRACE only.
		LogLevel: "TRACE",
	}
	agent := harness.Start(b, opts)
	agent.WaitDriver(b, harness.PluginName, true)
	return &benchRun{b: b, agent: agent, rootCert: certPath, mem: map[string]memSample{}}
}

func (r *benchRun) plainKind() benchKind {
	if r.proxyEnv == nil {
		r.b.Fatal("the baseline needs the environment of a meshed pilot-agent first")
	}
	return benchKind{
		name: "raw_exec + pilot-agent",
		file: "bench-raw-exec.hcl",
		vars: harness.Vars{
			"pilot_agent":        harness.PilotAgentBin(r.b),
			"bootstrap_template": harness.BootstrapTemplate(r.b),
			"root_cert":          r.rootCert,
		},
		env: r.proxyEnv,
	}
}

// jobRun is one registered job: when it was registered, its allocations once settled, and when each proxy was
// first seen ready.
type jobRun struct {
	registered time.Time
	allocs     []*api.AllocationListStub
	ready      map[string]time.Time
}

// run registers count groups of the kind as job id and waits until they run and their proxies are ready.
func (r *benchRun) run(kind benchKind, id string, count int, poll time.Duration) *jobRun {
	r.b.Helper()
	vars := harness.Vars{"count": count}
	for k, v := range kind.vars {
		vars[k] = v
	}
	job := r.agent.ParseJobVars(r.b, kind.file, id, vars)
	if kind.env != nil {
		for _, task := range job.TaskGroups[0].Tasks {
			if task.Name == "sidecar" {
				task.Env = kind.env
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), benchTimeout)
	defer cancel()
	w := r.agent.WatchReady(ctx, id, poll)
	run := &jobRun{registered: time.Now()}
	r.agent.Register(r.b, job)
	run.allocs = r.agent.WaitJobSettled(r.b, id, count, benchTimeout)
	var running []string
	for _, s := range run.allocs {
		if harness.AllTasksRunning(s) {
			running = append(running, s.ID)
		}
	}
	run.ready = w.Wait(ctx, running)
	return run
}
