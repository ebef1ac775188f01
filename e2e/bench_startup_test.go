//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/istio-sidecar/istio-sidecar/e2e/harness"
)

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
