//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strings"
	"testing"
	"text/tabwriter"

	"github.com/istio-sidecar/istio-sidecar/e2e/harness"
)

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

	fmt.Fprintf(out, "\nistio-sidecar bench: Nomad %s, %d CPUs, Envoy: %s\n", harness.NomadVersion, runtime.NumCPU(), envoyKind(r.b))
	fmt.Fprintf(w, "Start-up of one bridge-mode group, median of %d (ms)\tistio-sidecar\traw_exec + pilot-agent\tratio\t\n", benchSamples)
	row("  prestart hooks done → proxy ready (outside probe)", median(meshed, startSample.toReady), median(plain, startSample.toReady), "%.0f")
	row("  prestart hooks done → Started (app may start)", median(meshed, startSample.toStarted), median(plain, startSample.toStarted), "%.0f")
	row("  driver's own work, before pilot-agent runs", median(meshed, startSample.driverWork), median(plain, startSample.driverWork), "%.0f")
	row("    checks, namespace inspection, layout", median(meshed, startSample.beforeRules), none, "%.0f")
	row("    iptables rules (task events)", median(meshed, startSample.rules), none, "%.0f")
	row("    executor launch of pilot-agent", median(meshed, startSample.launch), median(plain, startSample.launch), "%.0f")
	row("  pilot-agent + Envoy start-up (launch → ready)", median(meshed, startSample.proxyStartup), median(plain, startSample.proxyStartup), "%.0f")
	row("  ready → Started (driver's 200 ms poll, return)", median(meshed, startSample.afterReady), none, "%.0f")

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
