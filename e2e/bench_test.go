//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/istio-sidecar/istio-sidecar/e2e/harness"
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
	cert, err := harness.ThrowawayRootCert("istio-sidecar bench root", time.Hour)
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
	settled    time.Time
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
	run.settled = time.Now()
	var running []string
	for _, s := range run.allocs {
		if harness.AllTasksRunning(s) {
			running = append(running, s.ID)
		}
	}
	run.ready = w.Wait(ctx, running)
	return run
}

// startSample is one group's start, as timestamps on this host's clock.
type startSample struct {
	prestartEnd time.Time // Nomad turns to the driver's StartTask
	started     time.Time // the "Started" event: StartTask returned; the app may start
	ready       time.Time // the proxy first answered /healthz/ready
	// The driver's events (istio-sidecar only): after the rules, after the executor launched pilot-agent.
	rulesAt, launchedAt time.Time
	rulesMS             float64 // the durations the iptables events report, summed over families
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (s startSample) toReady() float64   { return ms(s.ready.Sub(s.prestartEnd)) }
func (s startSample) toStarted() float64 { return ms(s.started.Sub(s.prestartEnd)) }

// beforeRules: Nomad's hand-off to the plugin, config checks, the namespace inspection and the layout.
func (s startSample) beforeRules() float64 {
	return ms(s.rulesAt.Sub(s.prestartEnd)) - s.rulesMS
}
func (s startSample) rules() float64 { return s.rulesMS }

// launch: the executor started and pilot-agent launched (raw_exec: Nomad's hand-off included).
func (s startSample) launch() float64 {
	if s.launchedAt.IsZero() {
		return ms(s.started.Sub(s.prestartEnd))
	}
	return ms(s.launchedAt.Sub(s.rulesAt))
}

// driverWork is everything before pilot-agent runs.
func (s startSample) driverWork() float64 {
	if s.launchedAt.IsZero() {
		return s.launch()
	}
	return ms(s.launchedAt.Sub(s.prestartEnd))
}

// proxyStartup: pilot-agent launched → ready; for raw_exec from its Started event (which follows the launch).
func (s startSample) proxyStartup() float64 {
	if s.launchedAt.IsZero() {
		return ms(s.ready.Sub(s.started))
	}
	return ms(s.ready.Sub(s.launchedAt))
}

// afterReady: ready → Started, the driver's 200 ms readiness poll and the return to Nomad.
func (s startSample) afterReady() float64 { return ms(s.started.Sub(s.ready)) }

var iptablesMS = regexp.MustCompile(`^iptables: .* in (\d+) ms$`)

// single starts one group of the kind, reads its timeline and, when measure is set, its memory; then stops it.
func (r *benchRun) single(kind benchKind, i int, measure bool) startSample {
	b := r.b
	id := fmt.Sprintf("bench-%s-%d", strings.Fields(kind.name)[0], i)
	run := r.run(kind, id, 1, readyPoll)
	if len(run.allocs) != 1 || !harness.AllTasksRunning(run.allocs[0]) {
		b.Fatalf("%s: the group did not start; events:\n%s", id, strings.Join(r.allocEvents(run), "\n"))
	}
	allocID := run.allocs[0].ID
	ready, ok := run.ready[allocID]
	if !ok {
		b.Fatalf("%s: the proxy of allocation %s never answered ready", id, allocID)
	}
	s := startSample{ready: ready}
	var err error
	if s.prestartEnd, err = r.agent.PrestartEnd(allocID, "sidecar"); err != nil {
		b.Fatal(err)
	}
	events := r.agent.TimedEvents(b, allocID, "sidecar")
	started, ok := harness.FirstEvent(events, "Started", "")
	if !ok {
		b.Fatalf("%s: no Started event", id)
	}
	s.started = started.Time
	for _, e := range events {
		if m := iptablesMS.FindStringSubmatch(e.Message); m != nil {
			n, _ := strconv.ParseFloat(m[1], 64)
			s.rulesMS += n
			s.rulesAt = e.Time
		}
	}
	if e, ok := harness.FirstEvent(events, "", "Proxy started:"); ok {
		s.launchedAt = e.Time
	}
	pilotAgent := r.pilotAgentPID(kind, allocID)
	if r.proxyEnv == nil && kind.env == nil {
		r.proxyEnv = baselineEnv(b, pilotAgent, r.agent.AllocDir(allocID))
	}
	if measure {
		r.mem[kind.name] = r.memory(allocID, pilotAgent)
	}
	r.agent.StopJob(b, id)
	return s
}

func (r *benchRun) allocEvents(run *jobRun) []string {
	var lines []string
	for _, s := range run.allocs {
		if al, _, err := r.agent.Client.Allocations().Info(s.ID, nil); err == nil {
			lines = append(lines, harness.AllocEvents(al)...)
		}
	}
	return lines
}

// pilotAgentPID: the driver names it in an event; under raw_exec it is the executor's child (sh execs it).
func (r *benchRun) pilotAgentPID(kind benchKind, allocID string) int {
	if kind.env == nil {
		pids := harness.PilotAgentPIDs(r.agent.TaskEventsRaw(r.b, allocID, "sidecar"))
		if len(pids) == 0 {
			r.b.Fatalf("allocation %s: no \"Proxy started\" event", allocID)
		}
		return pids[len(pids)-1]
	}
	for _, e := range r.executors(allocID) {
		if e.Task == "sidecar" {
			if kids := harness.ChildPIDs(e.PID); len(kids) == 1 {
				return kids[0]
			}
		}
	}
	r.b.Fatalf("allocation %s: no pilot-agent under the sidecar's executor", allocID)
	return 0
}

func (r *benchRun) executors(allocID string) []harness.ExecutorProc {
	all, err := r.agent.Executors()
	if err != nil {
		r.b.Fatal(err)
	}
	var out []harness.ExecutorProc
	for _, e := range all {
		if e.AllocID == allocID {
			out = append(out, e)
		}
	}
	return out
}

// proxyEnvKeys are the variables the driver sets for pilot-agent (and the stand-in's knobs); the rest of its
// environment is Nomad's task environment, which raw_exec gives the baseline anyway.
var proxyEnvKeys = regexp.MustCompile(`^(PROXY_CONFIG|POD_|SERVICE_ACCOUNT|TRUST_DOMAIN|CA_ADDR|CANONICAL_|ISTIO_|` +
	`OUTPUT_CERTS|PROV_CERT|JWT_POLICY|EXIT_ON_ZERO_ACTIVE_CONNECTIONS|STANDIN_ENVOY_)`)

// baselineEnv returns the meshed pilot-agent's environment for the baseline task: the driver's variables, with
// its task directory replaced by the baseline's (interpolated by Nomad) and without the meshed group's address.
func baselineEnv(b *testing.B, pid int, allocDir string) map[string]string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		b.Fatalf("reading pilot-agent's environment: %v", err)
	}
	taskDir := filepath.Join(allocDir, "sidecar")
	env := map[string]string{}
	for _, kv := range strings.Split(strings.TrimRight(string(data), "\x00"), "\x00") {
		k, v, _ := strings.Cut(kv, "=")
		if !proxyEnvKeys.MatchString(k) || k == "INSTANCE_IP" {
			continue
		}
		env[k] = strings.ReplaceAll(v, taskDir, "${NOMAD_ALLOC_DIR}/../sidecar")
	}
	if env["PROXY_CONFIG"] == "" {
		b.Fatalf("pilot-agent pid %d has no PROXY_CONFIG", pid)
	}
	return env
}

// memSample is the memory of one running group and of the plugin.
type memSample struct {
	plugin               harness.Mem // every plugin process of the agent (istio-sidecar only)
	sidecarExec, appExec harness.Mem
	pilotAgent, envoy    harness.Mem
}

func (r *benchRun) memory(allocID string, pilotAgent int) memSample {
	var m memSample
	for _, pid := range r.agent.PluginPIDs(r.b) {
		m.plugin = addMem(m.plugin, procMem(r.b, pid))
	}
	for _, e := range r.executors(allocID) {
		switch e.Task {
		case "sidecar":
			m.sidecarExec = procMem(r.b, e.PID)
		case "app":
			m.appExec = procMem(r.b, e.PID)
		}
	}
	m.pilotAgent = procMem(r.b, pilotAgent)
	if kids := harness.ChildPIDs(pilotAgent); len(kids) > 0 {
		m.envoy = procMem(r.b, kids[0])
	}
	return m
}

func procMem(b *testing.B, pid int) harness.Mem {
	m, err := harness.ProcMem(pid)
	if err != nil {
		b.Fatalf("memory of pid %d: %v", pid, err)
	}
	return m
}

func addMem(a, b harness.Mem) harness.Mem { return harness.Mem{RSS: a.RSS + b.RSS, PSS: a.PSS + b.PSS} }

// crowdResult is benchGroups groups registered at once.
type crowdResult struct {
	allRunning, allReady time.Duration // from registration
	groups, running      int
	failed, restarts     int
	driverFailures       int
	lockLines            int
	plugin               harness.Mem
	sidecarExec          harness.Mem // median over the groups
}

func (r *benchRun) crowd(kind benchKind) crowdResult {
	b := r.b
	before := r.lockLines()
	id := "bench-crowd-" + strings.Fields(kind.name)[0]
	run := r.run(kind, id, benchGroups, crowdPoll)
	c := crowdResult{groups: len(run.allocs)}
	var lastStart time.Time
	for _, s := range run.allocs {
		al, _, err := r.agent.Client.Allocations().Info(s.ID, nil)
		if err != nil {
			b.Fatal(err)
		}
		if al.ClientStatus == api.AllocClientStatusFailed {
			c.failed++
		}
		if harness.AllTasksRunning(s) {
			c.running++
		}
		for _, ts := range al.TaskStates {
			c.restarts += int(ts.Restarts)
			if ts.StartedAt.After(lastStart) {
				lastStart = ts.StartedAt
			}
			for _, e := range ts.Events {
				if e.Type == api.TaskDriverFailure {
					c.driverFailures++
				}
			}
		}
	}
	c.allRunning = lastStart.Sub(run.registered)
	for _, at := range run.ready {
		if d := at.Sub(run.registered); d > c.allReady {
			c.allReady = d
		}
	}
	for _, pid := range r.agent.PluginPIDs(b) {
		c.plugin = addMem(c.plugin, procMem(b, pid))
	}
	var execs []harness.Mem
	for _, s := range run.allocs {
		for _, e := range r.executors(s.ID) {
			if e.Task == "sidecar" {
				execs = append(execs, procMem(b, e.PID))
			}
		}
	}
	if len(execs) > 0 {
		sort.Slice(execs, func(i, j int) bool { return execs[i].RSS < execs[j].RSS })
		c.sidecarExec = execs[len(execs)/2]
	}
	if c.running != benchGroups || len(run.ready) != c.running {
		b.Logf("%s: %d of %d groups running, %d proxies seen ready; events:\n%s", id, c.running, benchGroups,
			len(run.ready), strings.Join(r.allocEvents(run), "\n"))
	}
	r.agent.StopJob(b, id)
	c.lockLines = r.lockLines() - before
	return c
}

func (r *benchRun) lockLines() int {
	lines, err := r.agent.LogLines(lockTrouble)
	if err != nil {
		r.b.Fatal(err)
	}
	return len(lines)
}

func median(samples []startSample, f func(startSample) float64) float64 {
	v := make([]float64, len(samples))
	for i, s := range samples {
		v[i] = f(s)
	}
	sort.Float64s(v)
	if len(v) == 0 {
		return 0
	}
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// printTable writes the figures; ratios are istio-sidecar over the baseline measured in the same run.
func printTable(out *os.File, r *benchRun, meshed, plain []startSample, cm, cp crowdResult) {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	row := func(label string, a, b float64, format string) {
		cells := []string{fmt.Sprintf(format, a), "—", "—"}
		if b >= 0 {
			cells[1] = fmt.Sprintf(format, b)
			if b > 0 {
				cells[2] = fmt.Sprintf("%.2f", a/b)
			}
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t\n", label, cells[0], cells[1], cells[2])
	}
	none := -1.0
	mib := func(v uint64) float64 { return float64(v) / (1 << 20) }
	med := func(s []startSample, f func(startSample) float64) float64 { return median(s, f) }

	fmt.Fprintf(out, "\nistio-sidecar bench: Nomad %s, %d CPUs, Envoy: %s\n", harness.NomadVersion, runtime.NumCPU(), envoyKind(r.b))
	fmt.Fprintf(w, "Start-up of one bridge-mode group, median of %d (ms)\tistio-sidecar\traw_exec + pilot-agent\tratio\t\n", benchSamples)
	row("  prestart hooks done → proxy ready (outside probe)", med(meshed, startSample.toReady), med(plain, startSample.toReady), "%.0f")
	row("  prestart hooks done → Started (app may start)", med(meshed, startSample.toStarted), med(plain, startSample.toStarted), "%.0f")
	row("  driver's own work, before pilot-agent runs", med(meshed, startSample.driverWork), med(plain, startSample.driverWork), "%.0f")
	row("    checks, namespace inspection, layout", med(meshed, startSample.beforeRules), none, "%.0f")
	row("    iptables rules (task events)", med(meshed, startSample.rules), none, "%.0f")
	row("    executor launch of pilot-agent", med(meshed, startSample.launch), med(plain, startSample.launch), "%.0f")
	row("  pilot-agent + Envoy start-up (launch → ready)", med(meshed, startSample.proxyStartup), med(plain, startSample.proxyStartup), "%.0f")
	row("  ready → Started (driver's 200 ms poll, return)", med(meshed, startSample.afterReady), none, "%.0f")

	mm, mp := r.mem[meshedKind.name], r.mem["raw_exec + pilot-agent"]
	fmt.Fprintf(w, "Memory of one running group (MiB RSS / PSS)\t\t\t\t\n")
	row("  plugin process RSS (raw_exec lives in the agent)", mib(mm.plugin.RSS), none, "%.1f")
	row("  plugin process PSS", mib(mm.plugin.PSS), none, "%.1f")
	row("  executor of the proxy task RSS", mib(mm.sidecarExec.RSS), mib(mp.sidecarExec.RSS), "%.1f")
	row("  executor of the proxy task PSS", mib(mm.sidecarExec.PSS), mib(mp.sidecarExec.PSS), "%.1f")
	row("  executor of the app task RSS (raw_exec in both)", mib(mm.appExec.RSS), mib(mp.appExec.RSS), "%.1f")
	row("  pilot-agent RSS", mib(mm.pilotAgent.RSS), mib(mp.pilotAgent.RSS), "%.1f")
	row("  Envoy RSS", mib(mm.envoy.RSS), mib(mp.envoy.RSS), "%.1f")

	fmt.Fprintf(w, "%d bridge-mode groups registered at once (one job)\t\t\t\t\n", benchGroups)
	row("  registration → every task running (s)", cm.allRunning.Seconds(), cp.allRunning.Seconds(), "%.1f")
	row("  registration → every proxy ready (s)", cm.allReady.Seconds(), cp.allReady.Seconds(), "%.1f")
	row("  groups running", float64(cm.running), float64(cp.running), "%.0f")
	row("  failed allocations", float64(cm.failed), float64(cp.failed), "%.0f")
	row("  task restarts", float64(cm.restarts), float64(cp.restarts), "%.0f")
	row("  driver failures", float64(cm.driverFailures), float64(cp.driverFailures), "%.0f")
	row("  xtables lock complaints (agent log)", float64(cm.lockLines), float64(cp.lockLines), "%.0f")
	row("  plugin process RSS after the groups started (MiB)", mib(cm.plugin.RSS), none, "%.1f")
	row("  executor of a proxy task, median RSS (MiB)", mib(cm.sidecarExec.RSS), mib(cp.sidecarExec.RSS), "%.1f")
	row("  executor of a proxy task, median PSS (MiB)", mib(cm.sidecarExec.PSS), mib(cp.sidecarExec.PSS), "%.1f")
	w.Flush()
	fmt.Fprint(out, `
How to read it: one host clock throughout. "prestart hooks done" is Nomad's TRACE line right before it calls
StartTask; driver events carry the driver's own timestamps; "ready" is this benchmark's probe of /healthz/ready
on 15021 every 20 ms (100 ms for the 20 groups) inside the group's namespace. raw_exec's StartTask returns as soon
as the process is launched, so its app may start before the proxy listens; the driver's Started comes after ready
by design (hold_application_until_proxy_starts). The baseline's "driver's own work" is Nomad's hand-off and
raw_exec's launch up to its Started event; its start-up includes the shell that lays out pilot-agent's working tree.
Executors: the driver's is the plugin binary re-executed, raw_exec's is the nomad binary; PSS shares a binary's
pages among the processes that map them.
`)
	fmt.Fprintln(out)
}

// envoyKind says whether the run used the stand-in, which marks itself with an all-zero build SHA.
func envoyKind(b *testing.B) string {
	bin := harness.EnvoyBin(b)
	out, err := exec.Command(bin, "--version").CombinedOutput()
	switch {
	case err != nil:
		return fmt.Sprintf("%s (--version failed: %v)", bin, err)
	case strings.Contains(string(out), strings.Repeat("0", 40)):
		return "the stand-in (" + bin + "), not a real Envoy"
	default:
		return "real Envoy " + strings.TrimSpace(string(out))
	}
}
